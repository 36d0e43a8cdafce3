//! Node analysis: connected components, RECIST measurements and post-processing of node masks.
