"""tlsframe comparison benchmark (bench/run.py is the entry point).

Modules by job; data flows one way, runner -> results -> report:

  runner   cli (options, metadata, main loop), figures (what each figure measures),
           servers (A/B/C set-up), loadgen (tlsframe-loadgen runs and their parsing),
           inputs (certificates, frames, the snapshot of the build), threadcount (I/O
           threads of one process serving 16 streams), procs (process groups, signals,
           /proc readings), common (errors, log)
  results  results.json and results-compact.json (written by the runner)
  report   the table, ratios and markers, from a results JSON alone: it imports
           nothing from the runner (python3 -m tlsframebench.report results.json)

Standard library only (threadcount's child process also needs PyGObject).
"""
