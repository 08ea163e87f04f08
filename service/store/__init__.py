"""The store: database engine and sessions, the ORM, the PNG image store, tokens and accounts."""
