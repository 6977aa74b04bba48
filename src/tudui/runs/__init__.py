"""Everything that keeps a run safe, around the one object that knows a run folder's layout."""
