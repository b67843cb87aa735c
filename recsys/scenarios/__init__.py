"""Scenario machinery: hardware catalogues and hosted-API stages (``fleet``), their config
nodes (``config``), and multi-pairing scenarios such as ``experiment=ecommerce`` (``run``)."""
