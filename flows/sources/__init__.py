"""Sources: where posts come from, one module (or folder) each, none of them importing Prefect.

A source is built from its typed settings (its own INI section) and yields `base.Batch`es of posts
in `flows.schema.POST_SCHEMA`, each with the cursor that holds once that batch has landed in the
lake. The collector writes a batch, then saves its cursor, so a run that dies after batch k
resumes at batch k+1; a batch written twice is de-duplicated by the lake.
"""
