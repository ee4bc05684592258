"""The guest's DNS in cluster mode: what kubelet writes into the launcher pod's resolv.conf.

KubeVirt's DHCP server runs inside the launcher pod and hands the guest the pod's own
resolv.conf: the cluster DNS service and the search domains `<ns>.svc.<domain>`,
`svc.<domain>`, `<domain>`. netplug's DHCP server is started by the node agent, whose
resolv.conf is the node's; so the controller decides the pod's DNS the way kubelet does
(pkg/kubelet/network/dns) from the VMI's `dnsPolicy` and `dnsConfig` (copied to the pod, as
KubeVirt does), and gives it to netplug's bindings in cni-args as CNI's `dns` key:

- `ClusterFirst` (the default) and `ClusterFirstWithHostNet`: the cluster's DNS servers and
  search domains, then dnsConfig's; with no cluster DNS known, kubelet falls back to `Default`
  and so does this;
- `None`: dnsConfig's only;
- `Default`: the node's resolv.conf, which is what the agent reads (no `dns` given); dnsConfig's
  additions then reach the pod but not the guest.
- A VMI `subdomain` puts `<subdomain>.<ns>.svc.<domain>` first, as KubeVirt's DHCP does.

Limits as kubelet's: 3 nameservers, 32 search domains (kubelet truncates; so does this). What
kubelet adds from the node itself (the node's search domains under ClusterFirst) is not known
here and not given to the guest.

May import: pydantic, netplug.model, netplug.errors, the standard library.
"""

from __future__ import annotations

from pydantic import ValidationError

from netplug.errors import InvalidField
from netplug.model import invalid_field
from netplug.model.netconf import DnsConf

POLICIES = ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")
MAX_NAMESERVERS = 3
MAX_SEARCH = 32


def _strings(config: dict, key: str, where: str) -> list[str]:
    values = config.get(key) or []
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise InvalidField(f"{where}.{key}", values, "must be a list of strings")
    return values


def guest_dns(spec: dict, namespace: str, cluster_dns: list[str], cluster_domain: str,
              base: str = "spec") -> dict | None:
    """The `dns` cni-arg for the VMI `spec` in `namespace` (None: the node's resolv.conf)."""
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    if policy not in POLICIES:
        raise InvalidField(f"{base}.dnsPolicy", policy, f"must be one of {', '.join(POLICIES)}")
    config = spec.get("dnsConfig") or {}
    if not isinstance(config, dict):
        raise InvalidField(f"{base}.dnsConfig", config, "must be an object")
    if policy == "Default" or (policy != "None" and not cluster_dns):
        return None
    if policy == "None":
        servers, search = [], []
    else:
        servers = list(cluster_dns)
        search = [f"{namespace}.svc.{cluster_domain}", f"svc.{cluster_domain}", cluster_domain]
        subdomain = spec.get("subdomain")
        if isinstance(subdomain, str) and subdomain:
            search.insert(0, f"{subdomain}.{namespace}.svc.{cluster_domain}")
    where = f"{base}.dnsConfig"
    servers += _strings(config, "nameservers", where)
    search += _strings(config, "searches", where)
    options = [o.get("name", "") + (f":{o['value']}" if o.get("value") is not None else "")
               for o in config.get("options") or [] if isinstance(o, dict)]
    try:
        dns = DnsConf(nameservers=list(dict.fromkeys(servers))[:MAX_NAMESERVERS],
                      search=list(dict.fromkeys(search))[:MAX_SEARCH], options=options)
    except ValidationError as exc:
        error = invalid_field(exc, where)
        raise InvalidField(error.field.replace(".search", ".searches"), error.value, error.message) from None
    return dns.model_dump(exclude_defaults=True)
