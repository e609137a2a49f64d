"""Ray's OptunaSearch on a search's own study: Ray hands each new trial the study's next point (its sampler, its
queued points) and hears the trial's reports; how a trial ended is told by the search, not by Ray's guess."""
from __future__ import annotations

import contextlib
import logging
import time

import optuna

from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from .study import Heartbeat, fail_stale_trials

logger = logging.getLogger("automm_lite")


class StudySearch(OptunaSearch):
    """Ray Tune's searcher for ``RayTrials`` (``ray_tune.py``): ``plan.sample`` draws a point from
    ``plan.study``, ``plan.finish`` tells the study a trial's end; a heartbeat per running trial where the
    storage has them."""

    def __init__(self, plan):
        study = plan.study
        # Ray hands the define-by-run function a wrapper of the trial: the search's code gets the trial itself.
        super().__init__(space=lambda captor: plan.sample(captor.ot_trial), metric=plan.metric, mode=plan.mode,
                         sampler=study.sampler, study_name=study.study_name, storage=study._storage)
        self.plan, self.beats, self.told, self.errors = plan, {}, [], []

    def suggest(self, trial_id):
        deadline = self.plan.deadline
        if deadline is not None and time.time() > deadline and self._ot_study.get_trials(
                deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            logger.info("time_limit reached: no more trials.")
            return Searcher.FINISHED
        fail_stale_trials(self._ot_study)  # a killed worker's trial (shared storage) is queued again first
        config = super().suggest(trial_id)
        self.beats[trial_id] = Heartbeat(self._ot_study, self._ot_trials[trial_id]).start()
        return config

    def on_trial_result(self, trial_id, result):
        if not result.get("final") and "error" not in result:  # a validation: the trial's intermediate value
            super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id, result=None, error=False):
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        self._completed_trials.add(trial_id)
        beat = self.beats.pop(trial_id, None)
        if beat is not None:
            beat.stop()
        trial = self._ot_trials[trial_id]
        if self._ot_study._storage.get_trial(trial._trial_id).state.is_finished():
            self.told.append(trial.number)  # told when it was drawn (a point the study had already scored)
            return
        try:
            self.plan.finish(trial, dict(result or {}), error)
        except Exception as failure:  # noqa: BLE001 (Ray would only log it: raised after the run instead)
            self.errors.append(failure)
            with contextlib.suppress(Exception):
                self._ot_study.tell(trial, state=optuna.trial.TrialState.FAIL)
        self.told.append(trial.number)

    def stop_heartbeats(self) -> None:
        for beat in self.beats.values():
            beat.stop()

    # Ray pickles its searcher with the experiment's state, for Tuner.restore. This search resumes from its
    # Optuna study instead, and the study's database connection cannot be pickled: nothing is kept.
    def __getstate__(self):
        return {}

    def __setstate__(self, state):
        self.__dict__.update(state)

    def save(self, checkpoint_path):
        pass

    def save_to_dir(self, *args, **kwargs):
        pass
