"""Outgoing calls that cannot be steered elsewhere: ``egress.url`` parses a URL once,
``egress.policy`` decides whether its destination may be reached and pins the checked
addresses, ``egress.client`` makes the call to those addresses under one deadline and a
response size cap."""
