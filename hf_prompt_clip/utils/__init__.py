"""Room `utils/`, the ground floor: what every other floor uses and that knows nothing of CLIP or methods.

- `atomic`: files and folders written whole or not at all (temporary file, fsync, rename), the folder lock
  of a run (`FolderLock`, on `filelock`, with its holder's record beside it) and the full-disk error.
- `logs`: loggers that speak once per run (the main process), progress bars silenced by `--quiet`.
- `settings`: refusals that name settings by their field (`SettingError`), spelled as flags by the CLI.
- `version`: the package version recorded in saved adapters, and the upgrade advice.

Nothing here imports another floor of the package.
"""
