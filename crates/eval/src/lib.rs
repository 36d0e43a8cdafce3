//! Evaluation of lymph-node models with the published protocol and its statistics.
