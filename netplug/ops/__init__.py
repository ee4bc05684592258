"""The privilege boundary: the only code that touches the kernel or runs programs.

Arguments are primitives (names, paths, dicts), results are plain dataclasses or dicts,
never pyroute2 message objects, and errnos come back as netplug's named exceptions. The
shapes are those a separate privileged process could serve later without changing callers.

| module  | what                                  | capabilities            |
| ------- | ------------------------------------- | ----------------------- |
| netns   | check and enter network namespaces    | CAP_SYS_ADMIN           |
| link    | links, addresses, routes, taps        | CAP_NET_ADMIN           |
| rtnl    | the rtnetlink socket `link` speaks on | CAP_NET_ADMIN           |
| sysctl  | /proc/sys/net keys of the current ns  | CAP_NET_ADMIN           |
| nft     | nftables rulesets (`nft -j -f -`)     | CAP_NET_ADMIN           |
| dhcp    | the guest's dnsmasq service           | CAP_NET_BIND_SERVICE, CAP_SETUID |
| proc    | processes by their command line       | none (reads /proc)     |
| files   | atomic writes; small files from input | none                    |
| plugin  | executing delegated CNI plugins       | what the plugin needs   |

Functions that act "in the current netns" act in the calling *thread's* namespace: enter
the pod's with `netns.entered(path)` first. Programs started from inside inherit it.

May import: pyroute2, netplug.errors, the standard library.
"""
