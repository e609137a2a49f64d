"""Is a teacher worth distilling? Its score on the student's tuning rows against what the gold labels alone give
there, measured before the student trains (``distiller.teacher_check``)."""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

logger = logging.getLogger("automm_lite")

# What the gold labels alone give, measured in seconds: the classical linear model (TF-IDF, pixels, scaled numbers
# and one-hot categories into a logistic or ridge regression) fitted on the student's training rows.
REFERENCE = "linear"


@dataclass
class TeacherCheck:
    """The teachers' score and the gold-label reference's on the tuning rows, and the verdict.

    Attributes
    ----------
    metric : str
    teacher_score : float
        The teachers' (averaged) predictions scored on the tuning rows.
    reference_score : float or None
        The classical ``linear`` model fitted on the gold labels of the training rows; None when it cannot read
        the columns or fails (the teacher then passes).
    worth_distilling : bool
        The teacher scores better than the reference.
    seconds : float
    """

    metric: str
    teacher_score: float
    reference_score: float | None
    worth_distilling: bool
    seconds: float

    def describe(self) -> str:
        teacher = f"teacher tuning {self.metric} {self.teacher_score:.4f}"
        if self.reference_score is None:
            return teacher
        verdict = "above" if self.worth_distilling else "not above"
        return (f"{teacher}, {verdict} the {self.reference_score:.4f} of a {REFERENCE} model fitted on the gold "
                "labels")

    def as_dict(self) -> dict:
        return {"metric": self.metric, "teacher_score": self.teacher_score, "reference": REFERENCE,
                "reference_score": self.reference_score, "worth_distilling": self.worth_distilling}


def teacher_tuning_output(teachers: list, preprocessor, tuning):
    """The teachers' outputs on ``tuning`` as a classical model gives them: the mean of their class probabilities
    in the student's class order, or their mean value in the label's units."""
    import numpy as np

    from ..classical.base import softmax
    from .teacher import teacher_outputs

    outputs = []
    for teacher in teachers:
        logits = teacher.in_student_units(teacher_outputs(teacher, tuning)["teacher_logits"], preprocessor)
        if preprocessor.problem_type == "regression":
            mean, std = preprocessor.label_scale
            outputs.append(logits[:, 0] * std + mean)
        else:
            outputs.append(softmax(logits))
    return np.mean(outputs, axis=0)


def check_teacher(teachers: list, preprocessor, train, tuning, metric_name: str, seed: int,
                  with_reference: bool = True) -> TeacherCheck:
    """Score the teachers, and a gold-label reference, on the tuning rows.

    Parameters
    ----------
    teachers : list of Teacher
        Aligned to the student's classes.
    preprocessor : Preprocessor
        The student's, fitted.
    train, tuning : DataFrame
        The student's labelled training and tuning rows.
    metric_name : str
    seed : int
    with_reference : bool
        Fit the reference; without it the teacher is only scored (and passes).

    Returns
    -------
    TeacherCheck
    """
    from ..classical import applicable_kinds, fit_classical
    from ..classical.base import label_targets, ranking_key, score_output
    from ..exceptions import ConfigError, DataError
    from ..metrics import get_metric

    start = time.perf_counter()
    metric = get_metric(metric_name, preprocessor.problem_type)
    truth = label_targets(preprocessor, tuning)
    try:
        teacher_score = score_output(metric, preprocessor.problem_type, truth,
                                     teacher_tuning_output(teachers, preprocessor, tuning))
    except ValueError as error:  # e.g. ROC AUC of tuning rows of one class
        logger.info("The teacher cannot be scored on the tuning rows: %s", error)
        teacher_score = math.nan
    reference = None
    if with_reference and REFERENCE in applicable_kinds(preprocessor.column_types):
        try:
            reference = fit_classical(REFERENCE, preprocessor, train, tuning, metric_name, seed)[1]
        except (ConfigError, DataError, ValueError) as error:  # e.g. one class in the rows: no reference
            logger.info("No gold-label reference for the teacher check: %s", error)
    # a score the rows cannot give (NaN, e.g. one class in them) judges nothing: the teacher passes
    worth = (reference is None or math.isnan(teacher_score) or math.isnan(reference)
             or ranking_key(metric, teacher_score) > ranking_key(metric, reference))
    return TeacherCheck(metric.name, float(teacher_score), None if reference is None else float(reference), worth,
                        time.perf_counter() - start)
