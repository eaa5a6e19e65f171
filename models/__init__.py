"""The data layer: peewee models, the queries and the transaction boundaries. Only this package
(and ``migrations/``) writes SQL."""
