"""Long-running operations: job logic written once, run by Durable Functions or the local runner.

- :mod:`.steps`: what an orchestration is (a generator of steps) and the protocol an
  operation type implements;
- :mod:`.lifecycle`: starting, cancelling, and the bookkeeping steps both runners share;
- :mod:`.local_runner`: the embedded server's runner (checkpoints in the operation store,
  resumes at start-up).

The Durable Functions runner is :mod:`dicomweb.durable`. A new operation type is one
use-case module implementing :class:`.steps.OperationKind`, plus one line in
:func:`dicomweb.composition.build_services`.
"""
