"""The errors every warehouse engine raises."""


class WarehouseError(Exception):
    """A warehouse URL is wrong, or the warehouse refused an operation."""


class WarehouseLockedError(WarehouseError):
    """Another process held the warehouse for longer than the lock timeout."""
