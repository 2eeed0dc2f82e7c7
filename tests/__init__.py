# A package, so that `tests.*` imports find this folder before any
# top-level `tests` package installed into site-packages (model-index, a
# dependency of onedl-mmpretrain, ships one).
