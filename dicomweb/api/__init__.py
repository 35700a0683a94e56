"""The HTTP API: one package per DICOMweb transaction and per feature, each with a ``routes``
list mounted under the service root by :mod:`dicomweb.app`.

Routes parse and check the request, call one use case (:mod:`dicomweb.usecases`) or a port
directly for plain reads, and shape the response. They never import an adapter.
"""
