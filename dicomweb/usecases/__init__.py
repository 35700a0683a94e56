"""Use cases: one module per operation (store one instance, delete, handle a created blob,
import the drop zone, publish events). Each takes the ports it needs as arguments and never
imports an adapter, the composition root or HTTP.
"""
