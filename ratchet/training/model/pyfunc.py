"""The model as MLflow logs it: a pyfunc whose preprocessing is inside.

``mlflow.pyfunc.load_model("models:/<name>@champion").predict(raw_rows)``
returns one row per input: for a classifier the predicted label (``prediction``)
and one probability column per class (``proba_<class>``); for a regression model
the predicted number alone (``prediction``, float64).
"""

from __future__ import annotations

import mlflow.pyfunc
import pandas as pd

from ratchet.training.model.fit import Predictor


class RatchetPyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        self.predictor = Predictor.load(context.artifacts["predictor"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return self._frame(self.predictor, model_input)

    @staticmethod
    def _frame(predictor: Predictor, df: pd.DataFrame) -> pd.DataFrame:
        if predictor.task == "regression":
            return pd.DataFrame({"prediction": predictor.predict(df)}, index=df.index)
        proba = predictor.predict_proba(df)
        classes = predictor.classes
        out = pd.DataFrame(proba, columns=[f"proba_{c}" for c in classes], index=df.index)
        out.insert(0, "prediction", [classes[i] for i in proba.argmax(axis=1)])
        return out
