//! Data engine: simulated contrast-enhanced neck CT with ground-truth lymph nodes.
