"""The package's logging: a library's logger (a NullHandler), what the verbosity lets out handed to the application's
handlers or else printed by the package, and the fit log that keeps everything at any verbosity."""
import logging
import subprocess
import sys

from automm_lite.logs import set_console_verbosity

SAY = ("import logging, sys; from automm_lite.logs import add_log_file, remove_log_file, set_console_verbosity; "
       "log = logging.getLogger('automm_lite'); ")


def run(script: str, *args) -> str:
    """What a fresh process (no logging configured, unlike pytest's) prints on stderr."""
    done = subprocess.run([sys.executable, "-c", SAY + script, *map(str, args)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stderr


def test_the_package_logger_is_a_librarys():
    package = logging.getLogger("automm_lite")
    assert any(isinstance(h, logging.NullHandler) for h in package.handlers)


def test_the_applications_handlers_receive_what_the_verbosity_lets_out():
    # a handler of its own on the root logger, as logging.basicConfig() adds one (not pytest's caplog: pytest also
    # attaches that to every logger that does not propagate, the package's among them, so it hears everything)
    class Kept(logging.Handler):
        def __init__(self):
            super().__init__(logging.DEBUG)
            self.messages = []

        def emit(self, record):
            if record.name.startswith("automm_lite"):
                self.messages.append(record.getMessage())

    application, root = Kept(), logging.getLogger()
    root.addHandler(application)
    try:
        set_console_verbosity(1)
        logging.getLogger("automm_lite").info("progress")
        logging.getLogger("automm_lite.data.frames").warning("a warning")
        set_console_verbosity(2)
        logging.getLogger("automm_lite").info("shown at two")
    finally:
        root.removeHandler(application)
    assert application.messages == ["a warning", "shown at two"]


def test_a_handler_on_the_package_logger_receives_every_record_once(package_log):
    set_console_verbosity(0)
    logging.getLogger("automm_lite").info("progress")
    set_console_verbosity(2)
    logging.getLogger("automm_lite").info("shown at two")
    assert [r.getMessage() for r in package_log.records] == ["progress", "shown at two"]


def test_a_root_logger_at_warning_hears_no_progress_at_verbosity_zero():
    said = run("logging.basicConfig(level=logging.WARNING, format='app: %(message)s'); set_console_verbosity(0); "
               "log.info('progress'); log.warning('a warning'); log.error('an error')")
    assert said == "app: an error\n"


def test_verbosity_zero_prints_nothing_but_the_fit_log_keeps_everything(tmp_path):
    said = run("set_console_verbosity(0); handler = add_log_file(sys.argv[1]); log.info('progress'); "
               "log.warning('a warning'); logging.getLogger('automm_lite.data.frames').info('from a module'); "
               "remove_log_file(handler); set_console_verbosity(2); log.info('shown at two'); log.debug('detail')",
               tmp_path / "fit.log")
    assert said == "shown at two\n"
    kept = (tmp_path / "fit.log").read_text()
    assert all(line in kept for line in ("progress", "a warning", "from a module"))
    assert "shown at two" not in kept  # the file was removed before


def test_a_configured_root_logger_prints_each_record_once():
    configure = "logging.basicConfig(format='app: %(message)s'); "
    configured_first = run(configure + "set_console_verbosity(2); log.info('once')")
    configured_later = run("set_console_verbosity(2); " + configure + "log.info('once')")
    assert configured_first == configured_later == "app: once\n"
