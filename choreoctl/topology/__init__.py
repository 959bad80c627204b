"""The topology model: load, validate and query what runs where."""
