import json

import pandas as pd

from automm_lite.cli import main


def test_fit_evaluate_predict_on_files(bbc_short, tiny_text_dir, tmp_path, capsys):
    train, test = bbc_short
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_parquet(tmp_path / "test.parquet")
    code = main(["fit", str(tmp_path / "train.csv"), "--label", "label", "--path", str(tmp_path / "model"),
                 "--verbosity", "0", "--hyperparameters", f"model.hf_text.checkpoint_name={tiny_text_dir}",
                 "optimization.max_epochs=1", "model.hf_text.max_text_len=32"])
    assert code == 0 and json.loads(capsys.readouterr().out)["path"] == str(tmp_path / "model")
    assert main(["evaluate", str(tmp_path / "model"), str(tmp_path / "test.parquet"), "--metrics", "accuracy",
                 "--verbosity", "0"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert 0 <= result["accuracy"] <= 1 and result["timing"]["rows"] == len(test)
    assert main(["predict", str(tmp_path / "model"), str(tmp_path / "test.parquet"), "--output",
                 str(tmp_path / "pred.csv"), "--verbosity", "0"]) == 0
    predictions = pd.read_csv(tmp_path / "pred.csv")
    assert len(predictions) == len(test) and set(predictions["label"]) <= set(train["label"])


def test_user_errors_exit_2_with_a_message(tmp_path, capsys, bbc_short):
    bbc_short[0].to_csv(tmp_path / "train.csv", index=False)
    assert main(["fit", str(tmp_path / "train.csv"), "--label", "label", "--hyperparameters", "optim.lrr=1"]) == 2
    assert "optim.lr" in capsys.readouterr().err


def test_readme_starts_with_the_two_commands_that_ci_runs(repo_root):
    readme = (repo_root / "README.md").read_text()
    block = readme.split("```bash", 1)[1].split("```", 1)[0].strip().splitlines()
    assert len(block) == 2 and "automm-lite demo" in block[0] and "pytest" in block[1]
    ci = (repo_root / ".ci" / "run").read_text()
    assert block[1] in ci


def test_fit_with_a_teacher_and_unlabeled_rows(fitted_text_predictor, bbc_short, tiny_text_dir, tmp_path, capsys):
    train, test = bbc_short
    train.to_csv(tmp_path / "train.csv", index=False)
    test.drop(columns="label").to_csv(tmp_path / "unlabeled.csv", index=False)
    code = main(["fit", str(tmp_path / "train.csv"), "--label", "label", "--path", str(tmp_path / "student"),
                 "--verbosity", "0", "--teacher", fitted_text_predictor.path, "--unlabeled-data",
                 str(tmp_path / "unlabeled.csv"), "--hyperparameters", f"model.hf_text.checkpoint_name={tiny_text_dir}",
                 "optimization.max_epochs=1", "model.hf_text.max_text_len=32",
                 "distiller.teacher_check=false"])  # the tiny teacher is below a linear model: distil anyway
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["teacher"] == fitted_text_predictor.path
    assert summary["n_rows_trained"] == summary["n_train_rows"] + len(test)
    assert summary["distillation_recipe"]["recipe"] == "auto"


def test_distill_a_glue_task_with_the_examples_flags(bbc_short, tiny_text_dir, tmp_path, capsys):
    from test_datasets import glue_copy  # pytest puts this folder on sys.path

    source = glue_copy(tmp_path / "stsb", "stsb", bbc_short[0].text, n_train=80, n_validation=40)
    command = ["distill", "--glue_task", "stsb", "--glue-source", source, "--teacher_model", tiny_text_dir,
               "--max_epochs", "1", "--seed", "0", "--temperature", "2", "--output_feature_loss_type",
               "cosine_distance", "--finetuned_model_cache_folder", str(tmp_path / "cache"), "--verbosity", "0"]
    assert main(command) == 0
    out = capsys.readouterr().out
    assert "no-distill student" in out and "distilled student" in out and "pearsonr" in out and "ratio" in out
    assert "control student" in out and "gain over control" in out  # the equal-compute control
    assert "distiller.temperature" in out and "teacher:layers=1" in out  # kept as passed; the student cut
    teacher_file = next((tmp_path / "cache" / "stsb").glob("teacher-*/predictor.json"))
    saved = teacher_file.stat().st_mtime_ns
    assert main(command) == 0  # the teacher, the no-distill student and the control are reused
    assert teacher_file.stat().st_mtime_ns == saved and len(list((tmp_path / "cache" / "stsb").iterdir())) == 4


def test_fit_takes_teacher_before_the_file_and_glue_mistakes_exit_2(fitted_text_predictor, bbc_short, tmp_path,
                                                                    capsys):
    bbc_short[0].to_csv(tmp_path / "train.csv", index=False)
    # the teacher flag before the positional file: the file is not taken for a second teacher
    code = main(["fit", "--teacher", fitted_text_predictor.path, str(tmp_path / "train.csv"), "--label", "label",
                 "--hyperparameters", "optim.lrr=1"])
    assert code == 2 and "optim.lr" in capsys.readouterr().err
    assert main(["distill", "--glue-task", "cola"]) == 2
    assert "--glue-task: task='cola' is invalid: expected a GLUE task" in capsys.readouterr().err
    assert main(["distill", "--glue-task", "rte", "--glue-source", str(tmp_path / "nothing-here")]) == 2
    assert "save_to_disk" in capsys.readouterr().err
    # a bad distiller flag fails before any data is read or any model trains
    assert main(["distill", "--glue-task", "rte", "--glue-source", str(tmp_path / "nothing-here"),
                 "--temperature", "0", "--finetuned-model-cache-folder", str(tmp_path / "cache")]) == 2
    assert "distiller.temperature" in capsys.readouterr().err and not (tmp_path / "cache").exists()
    # the example's flags without a GLUE task are a mistake, not silently ignored
    assert main(["distill", "--task", "bbc-short", "--temperature", "2", "--seed", "1"]) == 2
    err = capsys.readouterr().err
    assert "--temperature" in err and "--seed" in err and "--glue-task" in err
