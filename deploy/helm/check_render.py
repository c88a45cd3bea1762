#!/usr/bin/python3
"""Checks one `helm template` rendering of the Sealbox chart against its values.

Usage: check_render.py VALUES.yaml < rendered.yaml      (exit 1 with every failure listed)
       check_render.py --args CONTAINER < rendered.yaml  (prints that container's args, one a line)
       check_render.py --init < rendered.yaml            (prints the signer init script)
       check_render.py --dashboards < rendered.yaml      (prints each dashboard's JSON, one a line)
What it checks is what docs/DEPLOY.md promises: capabilities exactly as documented, nothing
privileged unless asked, no key material anywhere, and the mounts, ports and labels that the
server's flags name.
"""
import hashlib, json, re, sys
import yaml

docs = [d for d in yaml.safe_load_all(sys.stdin.read()) if d]
by_kind = {}
for d in docs:
    by_kind.setdefault(d["kind"], []).append(d)
workloads = by_kind.get("DaemonSet", []) + by_kind.get("Deployment", [])

def pod():
    assert len(workloads) == 1, f"expected one workload, got {len(workloads)}"
    return workloads[0]["spec"]["template"]

def container(name):
    for c in pod()["spec"]["containers"] + pod()["spec"].get("initContainers", []):
        if c["name"] == name:
            return c
    return None

if sys.argv[1] == "--args":
    print("\n".join(container(sys.argv[2])["args"]))
    sys.exit(0)
if sys.argv[1] == "--init":
    print(container("signer")["args"][0])
    sys.exit(0)
if sys.argv[1] == "--dashboards":
    for cm in by_kind.get("ConfigMap", []):
        if cm["metadata"].get("labels", {}).get("grafana_dashboard") == "1":
            for text in cm["data"].values():
                print(json.dumps(json.loads(text)))
    sys.exit(0)

values = yaml.safe_load(open(sys.argv[1]))
def val(path, default=None):
    cur = values
    for p in path.split("."):
        if not isinstance(cur, dict) or p not in cur:
            return default
        cur = cur[p]
    return cur

errors = []
def check(cond, msg):
    if not cond:
        errors.append(msg)

kind = val("kind", "DaemonSet")
meter_on = bool(val("meter.enabled", False))
kernel_on = val("kernelMeter.enabled", True)
privileged = bool(val("privileged", False))
decrypt_none = bool(val("decryptKey.none", False))

check(len(workloads) == 1 and workloads[0]["kind"] == kind, f"one {kind} rendered")
spec = pod()["spec"]
labels = pod()["metadata"]["labels"]
volumes = {v["name"]: v for v in spec["volumes"]}

def flags(args):
    """--flag value pairs (repeatable flags collect), and bare switches."""
    out, i = {}, 1
    while i < len(args):
        a = args[i]
        if a.startswith("--") and i + 1 < len(args) and not args[i + 1].startswith("-"):
            out.setdefault(a, []).append(args[i + 1]); i += 2
        else:
            out.setdefault(a, []).append(True); i += 1
    return out

def mount_for(c, path):
    """The volume mount that holds `path` (the longest mountPath prefix)."""
    best = None
    for m in c.get("volumeMounts", []):
        mp = m["mountPath"].rstrip("/")
        if path == mp or path.startswith(mp + "/"):
            if best is None or len(mp) > len(best["mountPath"]):
                best = m
    return best

# --- privileges: exactly as documented (docs/DEPLOY.md, "Privileges") ---------------
expected_caps = {"signer": [], "serve": ["BPF", "PERFMON"] if kernel_on else [],
                 "meter": ["BPF", "PERFMON", "NET_ADMIN"]}
names = [c["name"] for c in spec["containers"]]
check(names == (["serve", "meter"] if meter_on else ["serve"]), f"containers {names}")
check([c["name"] for c in spec.get("initContainers", [])] == ["signer"], "one init container, signer")
for c in spec["containers"] + spec["initContainers"]:
    sc = c.get("securityContext", {})
    caps = sc.get("capabilities", {})
    check(caps.get("drop") == ["ALL"], f"{c['name']}: capabilities.drop is [ALL]")
    check(sorted(caps.get("add", [])) == sorted(expected_caps[c["name"]]),
          f"{c['name']}: capabilities.add {caps.get('add', [])} != {expected_caps[c['name']]}")
    want_priv = privileged and c["name"] != "signer"
    check(sc.get("privileged") is want_priv, f"{c['name']}: privileged is {want_priv}")
    check(sc.get("allowPrivilegeEscalation") is want_priv, f"{c['name']}: allowPrivilegeEscalation is {want_priv}")
    check(sc.get("readOnlyRootFilesystem") is True, f"{c['name']}: read-only root file system")
check(not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC"), "no host namespaces")
check("fsGroup" not in spec.get("securityContext", {}), "no fsGroup (it would loosen the 0400 secret files)")
check(spec.get("automountServiceAccountToken") is False, "no service account token")

# --- no key material: none rendered, none in values -------------------------------
rendered = json.dumps(docs)
check("Secret" not in by_kind, "the chart renders no Secret (keys come from existing ones)")
check(not re.search(r"0x[0-9a-fA-F]{64}", rendered), "no 32-byte hex key anywhere in the rendering")
check(not re.search(r"0x[0-9a-fA-F]{64}", json.dumps(values)), "no 32-byte hex key in the values")
for c in spec["containers"] + spec["initContainers"]:
    for e in c.get("env", []):
        if "value" in e:
            check(not re.search(r"(KEY|TOKEN|PASSWORD|SECRET)", e["name"]), f"{c['name']}: {e['name']} set in clear")

# --- serve: flags <-> mounts, ports ------------------------------------------------
serve = container("serve")
f = flags(serve["args"])
check(serve["command"] == ["runtime"] and serve["args"][0] == "serve", "serve runs `runtime serve`")
port = val("serve.port", 8080)
check(f.get("--listen") == [f"0.0.0.0:{port}"], f"--listen 0.0.0.0:{port}")
ports = {p["name"]: p["containerPort"] for p in serve["ports"]}
check(ports.get("http") == port, "containerPort http = the --listen port")
for probe in ("readinessProbe", "startupProbe", "livenessProbe"):
    g = serve[probe]["httpGet"]
    check(g["path"] == "/healthz" and g["port"] == "http", f"{probe} on /healthz")
files = val("modules.files")
modules = f.get("--module", [])
check([m.rsplit("/", 1)[1] for m in modules] == files, f"--module for each of {files}")
for m in modules:
    mt = mount_for(serve, m)
    check(mt and mt["name"] == "modules" and mt.get("readOnly"), f"{m} on the read-only modules volume")
mv = volumes["modules"]
if val("modules.configMap"):
    check(mv.get("configMap", {}).get("name") == val("modules.configMap"), "modules from the ConfigMap")
else:
    check({k: v for k, v in mv.items() if k != "name"} == val("modules.volume"), "modules from the given volume")

def secret_file(c, path, secret, key):
    mt = mount_for(c, path)
    if not mt:
        return check(False, f"{c['name']}: {path} is on no mount")
    v = volumes[mt["name"]].get("secret")
    check(v is not None and v["secretName"] == secret, f"{c['name']}: {path} comes from Secret {secret}")
    check(v is not None and v.get("defaultMode") == 0o400, f"{c['name']}: Secret {secret} mounted 0400")
    check(path.rsplit("/", 1)[1] == key and any(i["key"] == key for i in v.get("items", [])),
          f"{c['name']}: {path} is key {key} of {secret}")
    check(mt.get("readOnly") is True, f"{c['name']}: {path} read-only")

secret_file(serve, f["--token-file"][0], val("token.secretName"), val("token.key", "token"))
check("SEALBOX_TOKEN" not in json.dumps(serve.get("env", [])), "the token is a file, not SEALBOX_TOKEN")

def state_flags(c, f, state_sub):
    key = f["--key"][0]
    mt = mount_for(c, key)
    check(mt and mt["name"] == "state" and mt.get("subPathExpr") == "$(NODE_NAME)",
          f"{c['name']}: --key {key} is in the node's state directory")
    check(f["--state-dir"] == [f"{mt['mountPath']}/{state_sub}"], f"{c['name']}: --state-dir {mt['mountPath']}/{state_sub}")
    if decrypt_none:
        check("--decrypt-key" not in f, f"{c['name']}: no --decrypt-key")
    else:
        secret_file(c, f["--decrypt-key"][0], val("decryptKey.secretName"), val("decryptKey.key", "key"))
    check(f.get("--customer") == [val("customer")], f"{c['name']}: --customer")
    env_from = [e["configMapRef"]["name"] for e in c.get("envFrom", [])]
    cms = {cm["metadata"]["name"]: cm for cm in by_kind["ConfigMap"]}
    check(len(env_from) == 1 and cms[env_from[0]]["data"] == {"SEALBOX_RPC": val("rpc"), "SEALBOX_REGISTRY": val("registry")},
          f"{c['name']}: SEALBOX_RPC and SEALBOX_REGISTRY from the config ConfigMap")
    pw = val("decryptKey.passwordKey")
    has_pw = any(e["name"] == "SEALBOX_PASSWORD" for e in c.get("env", []))
    check(has_pw == bool(pw and not decrypt_none), f"{c['name']}: SEALBOX_PASSWORD iff decryptKey.passwordKey")

state_flags(serve, f, "serve")
release_state = f"{val('hostPaths.state', '/var/lib/sealbox').rstrip('/')}/"
check(volumes["state"]["hostPath"]["path"].startswith(release_state)
      and volumes["state"]["hostPath"]["type"] == "DirectoryOrCreate", "state: a hostPath per release")
if kernel_on:
    pin = f["--meter-pin-dir"][0]
    mt = mount_for(serve, pin)
    check(mt and mt["name"] == "bpffs", f"--meter-pin-dir {pin} on the bpffs hostPath")
    check("--no-kernel-meter" not in f, "kernel meter attached")
else:
    check("--no-kernel-meter" in f and "--meter-pin-dir" not in f, "--no-kernel-meter, no pin directory")
    check(not any(m["name"] == "bpffs" for m in serve["volumeMounts"]), "no bpffs mount without the kernel meter")
if kernel_on or meter_on:
    bp = volumes["bpffs"]["hostPath"]
    check(bp["path"].startswith(val("hostPaths.bpffs", "/sys/fs/bpf").rstrip("/") + "/sealbox/"), "pins in a per-release bpffs directory")
else:
    check("bpffs" not in volumes, "no bpffs volume when nothing is pinned")

svc = by_kind["Service"][0]
fullname = svc["metadata"]["name"]
ns = svc["metadata"]["namespace"]
hosts = f.get("--allow-host", [])
for h in [fullname, f"{fullname}.{ns}.svc", f"{fullname}.{ns}.svc.cluster.local"] + (val("serve.allowHosts") or []):
    check(h in hosts, f"--allow-host {h}")
check(all(labels.get(k) == v for k, v in svc["spec"]["selector"].items()), "the Service selects the pods")
sp = {p["name"]: p for p in svc["spec"]["ports"]}
check(sp["http"]["targetPort"] == "http" and sp["http"]["port"] == val("service.port", 8080), "Service port http")
sel = workloads[0]["spec"]["selector"]["matchLabels"]
check(all(labels.get(k) == v for k, v in sel.items()), "the workload's selector matches its pods")

# --- meter -------------------------------------------------------------------------
if meter_on:
    m = container("meter")
    mf = flags(m["args"])
    check(m["args"][:2] == ["meter", "--tls"], "meter runs `runtime meter --tls`")
    check(mf["--billing"] == [f"/etc/sealbox/modules/{val('meter.tariff')}"] and mount_for(m, mf["--billing"][0])["name"] == "modules",
          "--billing is the tariff on the modules volume")
    cg = mf["--cgroup"][0]
    cmt = mount_for(m, cg)
    check(cmt and cmt["name"] == "cgroup" and cmt.get("readOnly"), "--cgroup below the read-only host cgroup mount")
    check(volumes["cgroup"]["hostPath"]["path"] == val("meter.cgroupRoot", "/sys/fs/cgroup"), "cgroup hostPath = meter.cgroupRoot")
    check(cg == f"{cmt['mountPath']}/{val('meter.cgroup').lstrip('/')}", "--cgroup = root + meter.cgroup")
    check(mount_for(m, mf["--tls-pin-dir"][0])["name"] == "bpffs", "--tls-pin-dir on the bpffs hostPath")
    check(mf["--tls-pin-dir"] != f.get("--meter-pin-dir"), "the two meters pin in different directories")
    check(mf["--port"] == [str(p) for p in val("meter.tlsPorts", [443])], "--port for each TLS port")
    mport = val("meter.port", 9464)
    check(mf["--listen"] == [f"0.0.0.0:{mport}"] and {p["name"]: p["containerPort"] for p in m["ports"]} == {"meter-metrics": mport},
          "meter --listen = containerPort meter-metrics")
    check(m["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "meter-metrics"}, "meter readiness on /healthz")
    check(sp.get("meter-metrics", {}).get("targetPort") == "meter-metrics", "Service port meter-metrics")
    state_flags(m, mf, "meter")
    check(mf["--state-dir"] != f["--state-dir"], "serve and meter each lock their own state directory")
    check(val("meter.tariff") not in files, "the tariff is not served")

# --- init: the node's own signer -----------------------------------------------------
init = container("signer")
script = init["args"][0]
key = f["--key"][0]
check(f'key={key}' in script and 'packager keygen --raw --out "$key"' in script, "signer generated at the --key path")
check(init["volumeMounts"] == [{"name": "state", "mountPath": mount_for(serve, key)["mountPath"], "subPathExpr": "$(NODE_NAME)"}],
      "the init container mounts only the node's state directory")

# --- rolling on change -----------------------------------------------------------------
ann = pod()["metadata"]["annotations"]
for k in ("checksum/config", "checksum/modules", "checksum/secrets"):
    check(re.fullmatch(r"[0-9a-f]{64}", ann.get(k, "")) is not None, f"annotation {k}")

# --- kind-specific ---------------------------------------------------------------------
if kind == "Deployment":
    w = workloads[0]["spec"]
    check(w["replicas"] == val("replicas", 1), "replicas")
    check(w["strategy"]["type"] == "Recreate", "Recreate: never two pods on one state directory")
    terms = spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    check(terms[0]["topologyKey"] == "kubernetes.io/hostname" and terms[0]["labelSelector"]["matchLabels"] == sel,
          "at most one pod per node")

# --- monitoring, network policy, dashboards -------------------------------------------------
sms = by_kind.get("ServiceMonitor", [])
check(len(sms) == (1 if val("serviceMonitor.enabled") else 0), "ServiceMonitor iff enabled")
for sm in sms:
    check(sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items(), "ServiceMonitor selects the Service")
    eps = {e["port"]: e for e in sm["spec"]["endpoints"]}
    check(set(eps) == ({"http", "meter-metrics"} if meter_on else {"http"}) and set(eps) <= set(sp), "ServiceMonitor endpoints = Service ports")
    check(eps["http"]["authorization"]["credentials"] == {"name": val("token.secretName"), "key": val("token.key", "token")},
          "the scrape of serve carries the token from its Secret")
nps = by_kind.get("NetworkPolicy", [])
check(len(nps) == (1 if val("networkPolicy.enabled", True) else 0), "NetworkPolicy iff enabled")
for np in nps:
    check(np["spec"]["podSelector"]["matchLabels"] == sel, "NetworkPolicy selects the pods")
    named = {p["port"] for r in np["spec"]["ingress"] for p in r["ports"]}
    check(named <= {p["name"] for c in spec["containers"] for p in c["ports"]}, "NetworkPolicy ports name container ports")
dash = [cm for cm in by_kind.get("ConfigMap", []) if cm["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
check(len(dash) == (1 if val("dashboards.enabled", True) else 0), "dashboard ConfigMap iff enabled")
for cm in dash:
    check(cm["metadata"]["namespace"] == (val("dashboards.namespace") or ns), "dashboard namespace")
    for name, text in cm["data"].items():
        d = json.loads(text)
        exprs = [t["expr"] for p in d["panels"] for t in p.get("targets", [])]
        check(len(exprs) >= 20 and all(exprs), f"{name}: every panel has queries")

if errors:
    print(f"{sys.argv[1]}: {len(errors)} check(s) failed:\n  " + "\n  ".join(errors))
    sys.exit(1)
print(f"{sys.argv[1]}: ok")
