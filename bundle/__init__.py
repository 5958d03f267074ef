"""The bundle contract: what export writes and the runtime, bench and evaluate read.

Imports nothing else of the project but ``edgehisto.errors``.
"""
