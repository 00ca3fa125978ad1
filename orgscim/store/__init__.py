"""Storage: the SQLite backend of the storage contract (:mod:`orgscim.model.contract`, docs/storage.md) and the
only package that runs SQL."""
