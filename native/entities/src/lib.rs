//! The entities step (see workers/steps/ for the Python reference).
