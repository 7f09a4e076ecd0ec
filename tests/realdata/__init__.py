"""Sources replayed on answers modelled on recordings of the real APIs (see conftest.py)."""
