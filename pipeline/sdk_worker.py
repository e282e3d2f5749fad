"""The local runner's worker process (``--direct_running_mode multi_processing``): Beam's SDK worker,
deaf to Ctrl-C.

A terminal sends Ctrl-C to every process of the job, workers included; Beam's workers would each
print a traceback. Here they ignore it: the launcher takes the signal, stops its workers and
says so in one line (``pipeline/interrupts.py``). Started by ``options.local_runner``.
"""

import signal
import sys

if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from apache_beam.runners.worker import sdk_worker_main

    sdk_worker_main.main(sys.argv)
