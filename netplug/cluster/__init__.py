"""Cluster mode's decisions, without I/O: what the controller should want, given what it sees.

- `lifecycle`: a VirtualMachine's run strategy → start or stop its VirtualMachineInstance, the
  VMI it starts, and the VM's status (printableStatus, ready, created, conditions);
- `launcher_pod`: a VMI → its launcher Pod (Multus networks annotation with the `pod<h>`
  secondary networks and netplug's binding entries, SR-IOV resources, the downward API that
  shows the launcher its VMI and the pod's network-status);
- `instance_status`: the launcher Pod (its phase, conditions, the compute container's state
  and the Multus network-status) → the VMI's status (phase, nodeName, interfaces, conditions);
- `objects`: owner references, finalizers, conditions and timestamps these share.

Every function takes plain Kubernetes documents (dicts) and the time, and returns documents;
`runtime.controller` reads and writes them through the API.

May import: netplug.model, netplug.pod, netplug.admission, netplug.bindings, netplug.guest,
netplug.naming, netplug.errors.
"""
