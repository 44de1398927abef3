//! Evaluation (see below).
