"""Preloaded by the process executor's fork server: on Linux the server is killed when the run
that started it dies, and its workers, which ask for the same of the server, die with it. (The
server's own exit when the run is gone waits for the workers, which hold its pipe open.)"""
from harness.executors import die_with_parent

die_with_parent()
