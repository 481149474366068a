"""Personal data and retention: what is kept about whom, for how long (docs/privacy.md).

retention   prune the audit log's old records behind an authenticated checkpoint
subjects    the reviewers and the operator: their personal fields, found, exported, erased
"""
