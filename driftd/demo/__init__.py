"""Small runnable companions for trying driftd locally (not used by the daemon)."""
