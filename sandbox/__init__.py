"""The sandbox JCT runs operators' commands in: bubblewrap (user, PID, network, mount, IPC, UTS
and cgroup namespaces), an unprivileged uid, rlimits and — where the host gives them — cgroup v2
limits; a fresh workspace per attempt; an HTTP(S) proxy as the only way out when the command
may use the network. Independent of rows, brokers and settings: everything comes in as
parameters, so the worker's ``command`` action wires it up.

- ``host.SandboxHost.detect()``: once per worker — bubblewrap, Python, uid, cgroup support;
  ``enforcement()`` says what holds each limit on this host.
- ``workspace.Workspace.create(root, owner=host.owner)``: per attempt, a context manager;
  ``write_files``, ``read_report``, ``collect``.
- ``git.checkout`` / ``git.diff``: a repository into the workspace (git runs in the sandbox)
  and the workspace's changes against it.
- ``process.run(SandboxCommand(...), workspace, host=host, ...)`` → ``SandboxResult``.

``docs/sandbox.md`` describes what is isolated, how each limit is enforced and what is not."""
