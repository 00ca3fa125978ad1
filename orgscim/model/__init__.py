"""The SCIM data model and the storage contract: the bottom layer that the protocol (``orgscim.scim``) and the
store (``orgscim.store``) both build on, so neither has to import the other."""
