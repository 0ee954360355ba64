//! The Kubernetes deployment (`deploy/kubernetes`) against the real server,
//! without a cluster: the manifests are read as Kubernetes would read them
//! and their contract with `strata-server` is exercised on loopback.
//!
//! - The StatefulSet's container env (downward-API values and `$(VAR)`
//!   expansion as the kubelet does it) and args start three `strata-server`
//!   processes; the stable per-pod DNS names are the only thing translated
//!   (each `strata-N.<service>.<namespace>.svc.cluster.local:PORT` and each
//!   `0.0.0.0:PORT` becomes a loopback port of pod N). They must form a
//!   quorum, derive node ids 1..3 from their pod names, answer the probes
//!   the manifest names, and take a produce and a consume.
//! - The preStop command moves a pod's leadership away; SIGTERM then stops
//!   it cleanly within the grace period.
//! - The secure overlay (`deploy/kubernetes/secure`): its JSON patches
//!   applied to the StatefulSet as kustomize applies them, certificates laid
//!   out as its projected volume lays out cert-manager's Secrets, three pods
//!   form a TLS cluster, answer HTTPS probes, take their first user from a
//!   pod's loopback, enforce ACLs, and drain over HTTPS; its Certificates
//!   name each node as the node identity check needs.
//! - Offline consistency: the config checksum annotation matches the
//!   ConfigMap, the kustomization lists every manifest, the Services and the
//!   PodDisruptionBudget select the StatefulSet's pods.
//!
//! Schema validation of every manifest (and of the overlay's patched
//! StatefulSet) is done by `.ci/run` with the `kubernetes-validate` package
//! (offline schemas; cert-manager's kinds have none there).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use strata_server::testkit::wait_until;
use strata_tests::cli::{strata, strata_json};
use strata_tests::{binary, free_port, http_get, Launch, ServerProcess};

/// The manifests' folder.
fn manifests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes")
}

/// One manifest, parsed.
fn load(file: &str) -> Value {
    let path = manifests().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The resource of `kind` among the kustomization's resources.
fn resource(kind: &str) -> Value {
    let k = load("kustomization.yaml");
    for file in k["resources"].as_array().expect("resources") {
        let r = load(file.as_str().expect("a file name"));
        if r["kind"] == kind {
            return r;
        }
    }
    panic!("no {kind} in the kustomization's resources");
}

fn container(sts: &Value) -> &Value {
    let containers = sts["spec"]["template"]["spec"]["containers"].as_array().expect("containers");
    containers.iter().find(|c| c["name"] == "strata").expect("a container named strata")
}

fn sha256_hex(data: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("sha256sum").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("sha256sum");
    child.stdin.take().expect("stdin").write_all(data).expect("write");
    let out = child.wait_with_output().expect("sha256sum output");
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().expect("a digest").to_string()
}

#[test]
fn the_config_checksum_annotation_matches_the_configmap() {
    let cm = resource("ConfigMap");
    let toml_text = cm["data"]["strata.toml"].as_str().expect("strata.toml in the ConfigMap");
    let sts = resource("StatefulSet");
    let annotation = sts["spec"]["template"]["metadata"]["annotations"]["strata.io/config-checksum"]
        .as_str()
        .expect("the strata.io/config-checksum annotation");
    let expected = format!("sha256:{}", sha256_hex(toml_text.as_bytes()));
    assert_eq!(annotation, expected, "update the annotation after changing the ConfigMap (deploy/README.md)");
}

#[test]
fn the_kustomization_lists_every_manifest_and_the_selectors_agree() {
    let k = load("kustomization.yaml");
    let mut listed: Vec<String> =
        k["resources"].as_array().expect("resources").iter().map(|f| f.as_str().unwrap_or("").to_string()).collect();
    listed.sort();
    let mut present: Vec<String> = std::fs::read_dir(manifests())
        .expect("deploy/kubernetes")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    present.sort();
    assert_eq!(listed, present, "every manifest is deployed by `kubectl apply -k`");

    let sts = resource("StatefulSet");
    let spec = &sts["spec"];
    let pod_labels = spec["template"]["metadata"]["labels"].as_object().expect("pod labels");
    let selects =
        |selector: &Value| selector.as_object().expect("a selector").iter().all(|(k, v)| pod_labels.get(k) == Some(v));
    assert!(selects(&spec["selector"]["matchLabels"]));
    assert_eq!(spec["replicas"], 3);
    assert_eq!(spec["ordinals"]["start"], 1, "node ids come from pod names: strata-1..3");
    assert_eq!(spec["podManagementPolicy"], "Parallel", "all voters must start for the quorum to form");
    let headless = load_service(true);
    assert_eq!(spec["serviceName"], headless["metadata"]["name"]);
    assert_eq!(headless["spec"]["clusterIP"], "None");
    assert_eq!(headless["spec"]["publishNotReadyAddresses"], true);
    assert!(selects(&headless["spec"]["selector"]));
    assert!(selects(&load_service(false)["spec"]["selector"]));
    let pdb = resource("PodDisruptionBudget");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    assert!(selects(&pdb["spec"]["selector"]["matchLabels"]));
    let claims = spec["volumeClaimTemplates"].as_array().expect("volumeClaimTemplates");
    let data_mount = container(&sts)["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
        .iter()
        .find(|m| claims.iter().any(|c| c["metadata"]["name"] == m["name"]))
        .expect("the data directory on a claim")
        .clone();
    let data_dir = env_value(&sts, "STRATA_DATA_DIR");
    assert_eq!(data_mount["mountPath"].as_str(), Some(data_dir.as_str()));
}

/// The headless Service, or the client one.
fn load_service(headless: bool) -> Value {
    let k = load("kustomization.yaml");
    for file in k["resources"].as_array().expect("resources") {
        let r = load(file.as_str().expect("a file name"));
        if r["kind"] == "Service" && (r["spec"]["clusterIP"] == "None") == headless {
            return r;
        }
    }
    panic!("no {} Service", if headless { "headless" } else { "client" });
}

/// A plain `value:` of the container's env.
fn env_value(sts: &Value, name: &str) -> String {
    container(sts)["env"]
        .as_array()
        .expect("env")
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str())
        .unwrap_or_else(|| panic!("env {name} has no plain value"))
        .to_string()
}

/// The container env of pod `strata-<ordinal>` as the kubelet builds it:
/// downward-API fields resolved, `$(VAR)` references to earlier variables
/// expanded (unknown ones left as written, as Kubernetes does).
fn pod_env(sts: &Value, ordinal: u32, namespace: &str, zone: &str) -> Vec<(String, String)> {
    let name = format!("strata-{ordinal}");
    let mut out: Vec<(String, String)> = Vec::new();
    for e in container(sts)["env"].as_array().expect("env") {
        let key = e["name"].as_str().expect("env name").to_string();
        let value = if let Some(v) = e["value"].as_str() {
            expand(v, &out)
        } else if let Some(path) = e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            match path {
                "metadata.name" => name.clone(),
                "metadata.namespace" => namespace.to_string(),
                "metadata.labels['topology.kubernetes.io/zone']" => zone.to_string(),
                other => panic!("env {key}: the test does not know fieldPath {other}"),
            }
        } else if e["valueFrom"]["resourceFieldRef"].is_object() {
            continue;
        } else {
            panic!("env {key}: unsupported source {e}");
        };
        out.push((key, value));
    }
    out
}

/// Kubernetes' `$(VAR)` expansion against the variables defined so far.
fn expand(v: &str, defined: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = v;
    while let Some(i) = rest.find("$(") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find(')') {
            Some(j) => {
                let var = &after[..j];
                match defined.iter().rev().find(|(k, _)| k == var) {
                    Some((_, val)) => out.push_str(val),
                    None => out.push_str(&rest[i..i + 2 + j + 1]),
                }
                rest = &after[j + 1..];
            }
            None => {
                out.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Loopback ports of one pod: client, controller, HTTP, Kafka.
#[derive(Debug, Clone, Copy)]
struct Ports {
    client: u16,
    controller: u16,
    http: u16,
    kafka: u16,
}

impl Ports {
    fn map(&self, port: u16) -> u16 {
        match port {
            9700 => self.client,
            9701 => self.controller,
            9702 => self.http,
            9092 => self.kafka,
            other => panic!("the manifest uses port {other}, which the test does not map"),
        }
    }
}

/// Rewrites the pods' DNS names and wildcard listens to loopback ports.
fn to_loopback(value: &str, me: u32, ports: &BTreeMap<u32, Ports>, service: &str, namespace: &str) -> String {
    let mut v = value.to_string();
    for (&n, p) in ports {
        for port in [9700u16, 9701, 9702, 9092] {
            let dns = format!("strata-{n}.{service}.{namespace}.svc.cluster.local:{port}");
            v = v.replace(&dns, &format!("127.0.0.1:{}", p.map(port)));
        }
    }
    for port in [9700u16, 9701, 9702, 9092] {
        v = v.replace(&format!("0.0.0.0:{port}"), &format!("127.0.0.1:{}", ports[&me].map(port)));
    }
    v
}

/// A `strata-server` process started like pod `strata-<ordinal>`; killed
/// (by PID) when dropped.
struct Pod {
    ordinal: u32,
    server: ServerProcess,
}

impl Pod {
    fn ready(&self, path: &str) -> bool {
        http_get(self.server.http, path).is_some_and(|(c, _)| c == 200)
    }

    fn bootstrap(&self) -> String {
        self.server.bootstrap()
    }
}

/// What starting a pod needs: the manifest and the loopback translation.
struct PodSpec<'a> {
    sts: &'a Value,
    service: &'a str,
    namespace: &'a str,
    ports: &'a BTreeMap<u32, Ports>,
    root: &'a Path,
    /// A mount path and the host folder standing in for it (the secure
    /// overlay's certificates).
    extra_mount: Option<(&'a str, &'a Path)>,
}

impl PodSpec<'_> {
    /// Starts pod `strata-<n>` as the kubelet would: the container's args
    /// and env, its data volume (kept across restarts) and the ConfigMap
    /// mounted where the manifest mounts it.
    fn start(&self, n: u32, config_text: &str, config_mount: &str, args: &[String]) -> Pod {
        let pod_root = self.root.join(format!("strata-{n}"));
        std::fs::create_dir_all(pod_root.join("config")).expect("pod dirs");
        std::fs::write(pod_root.join("config/strata.toml"), config_text).expect("config");
        let mut launch = Launch { args: args.to_vec(), env: Vec::new(), clear_strata_env: true };
        for (k, v) in pod_env(self.sts, n, self.namespace, &format!("zone-{n}")) {
            let mut v = to_loopback(&v, n, self.ports, self.service, self.namespace);
            if k == "STRATA_DATA_DIR" {
                v = pod_root.join("data").display().to_string();
            }
            // A mount is a path prefix ("/etc/strata" is not one of
            // "/etc/strata-tls/...").
            let under = |v: &str, mount: &str| v == mount || v.starts_with(&format!("{mount}/"));
            if under(&v, config_mount) {
                v = v.replacen(config_mount, &pod_root.join("config").display().to_string(), 1);
            } else if let Some((mount, host)) = self.extra_mount.filter(|(m, _)| under(&v, m)) {
                v = v.replacen(mount, &host.display().to_string(), 1);
            }
            launch.env.push((k, v));
        }
        let ports = self.ports[&n];
        let (listen, http) = (([127, 0, 0, 1], ports.client).into(), ([127, 0, 0, 1], ports.http).into());
        Pod { ordinal: n, server: ServerProcess::launch(launch, listen, http, &pod_root.join("server.log")) }
    }
}

/// The probe path of `probe` (e.g. `readinessProbe`) on the HTTP port.
fn probe_path(sts: &Value, probe: &str) -> String {
    let p = &container(sts)[probe]["httpGet"];
    let port = &p["port"];
    let http_port = container(sts)["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .find(|cp| &cp["name"] == port || &cp["containerPort"] == port)
        .and_then(|cp| cp["containerPort"].as_u64());
    assert_eq!(http_port, Some(9702), "{probe} targets the HTTP port");
    p["path"].as_str().unwrap_or_else(|| panic!("{probe} has a path")).to_string()
}

#[test]
fn three_pods_from_the_statefulset_form_a_cluster_and_drain_before_stopping() {
    let sts = resource("StatefulSet");
    let service = sts["spec"]["serviceName"].as_str().expect("serviceName").to_string();
    let namespace = load("kustomization.yaml")["namespace"].as_str().unwrap_or("default").to_string();
    let root = tempfile::tempdir().expect("tempdir");
    let config_text = resource("ConfigMap")["data"]["strata.toml"].as_str().expect("strata.toml").to_string();
    let config_mount = mount_path(&sts, "config");
    let ports = loopback_ports();
    let args = container_args(&sts);
    let pod = PodSpec {
        sts: &sts,
        service: &service,
        namespace: &namespace,
        ports: &ports,
        root: root.path(),
        extra_mount: None,
    };
    let mut pods: Vec<Pod> = (1..=3u32).map(|n| pod.start(n, &config_text, &config_mount, &args)).collect();
    let readiness = probe_path(&sts, "readinessProbe");
    let liveness = probe_path(&sts, "livenessProbe");
    let startup = probe_path(&sts, "startupProbe");
    let all_ready = || pods.iter().all(|p| p.ready(&startup) && p.ready(&liveness) && p.ready(&readiness));
    let started = std::time::Instant::now();
    while !all_ready() {
        if started.elapsed() >= Duration::from_secs(60) {
            // Say why: each pod's readiness answer and the end of its log.
            let report: Vec<String> = pods
                .iter()
                .map(|p| {
                    let answer = http_get(p.server.http, &readiness);
                    let log = p.server.log();
                    let tail: Vec<&str> = log.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect();
                    format!("pod {}: readiness {answer:?}\n{}", p.ordinal, tail.join("\n"))
                })
                .collect();
            panic!("the three pods are ready: not within 60s\n{}", report.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    // Node ids come from the pod names; racks from the zone label.
    let info = strata_json(&pods[0].bootstrap(), &["cluster", "info"]);
    let brokers = info["brokers"].as_array().cloned().unwrap_or_default();
    let ids: Vec<u64> = brokers.iter().filter_map(|b| b["node_id"].as_u64()).collect();
    assert_eq!(ids, [1, 2, 3], "{info}");
    assert!(brokers.iter().all(|b| b["rack"].as_str().is_some_and(|r| r.starts_with("zone-"))), "{info}");

    // Produce and consume through a replicated topic.
    let b = pods[0].bootstrap();
    let out = strata(&b, &["topic", "create", "k8s", "--partitions", "3", "--replication-factor", "3"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    produce_lines(&b, 0..100);
    let consumed = strata(&pods[2].bootstrap(), &["consume", "k8s", "--from-beginning", "--format", "%v\\n"]);
    assert!(consumed.status.success(), "{}", String::from_utf8_lossy(&consumed.stderr));
    assert_eq!(String::from_utf8_lossy(&consumed.stdout).lines().count(), 100);

    // preStop on pod 2: its leadership moves away while it still runs.
    let pre_stop: Vec<String> = container(&sts)["lifecycle"]["preStop"]["exec"]["command"]
        .as_array()
        .expect("a preStop exec command")
        .iter()
        .map(|a| a.as_str().expect("string").to_string())
        .collect();
    assert_eq!(pre_stop[0], "strata-server", "{pre_stop:?}");
    let leads_on_2 = |b: &str| {
        let d = strata_json(b, &["topic", "describe", "k8s"]);
        let parts = d["partitions"].as_array().cloned().unwrap_or_default();
        parts.iter().filter(|p| p["leader"].as_u64() == Some(2)).count()
    };
    wait_until("pod 2 leads a partition (preferred-leader balancing)", Duration::from_secs(30), || leads_on_2(&b) > 0);
    let started = Instant::now();
    // The hook's 127.0.0.1:9702 is pod 2's own HTTP port.
    let drain_args: Vec<String> =
        pre_stop[1..].iter().map(|a| a.replace("127.0.0.1:9702", &format!("127.0.0.1:{}", ports[&2].http))).collect();
    let drained = Command::new(binary("strata-server")).args(&drain_args).output().expect("preStop");
    assert!(drained.status.success(), "preStop failed: {}", String::from_utf8_lossy(&drained.stderr));
    assert_eq!(leads_on_2(&b), 0, "{}", String::from_utf8_lossy(&drained.stdout));
    assert!(pods[1].ready(&liveness), "a drained pod still answers its liveness probe");
    // SIGTERM (the kubelet, after preStop): a clean exit within the grace period.
    let grace = sts["spec"]["template"]["spec"]["terminationGracePeriodSeconds"].as_u64().expect("grace period");
    let status = pods[1]
        .server
        .sigterm_within(Duration::from_secs(grace))
        .unwrap_or_else(|| panic!("pod 2 did not stop within its {grace} s grace period"));
    assert!(status.success(), "{status}");
    eprintln!("preStop drain + SIGTERM took {:.1} s", started.elapsed().as_secs_f64());
    // The others keep serving while it is away and take more records.
    produce_lines(&b, 100..200);
    // The pod comes back (same volume): ready only once caught up, i.e.
    // back in the ISR of every partition — what a rolling update waits for.
    pods[1] = pod.start(2, &config_text, &config_mount, &args);
    wait_until("pod 2 ready again", Duration::from_secs(60), || pods[1].ready(&readiness));
    let d = strata_json(&b, &["topic", "describe", "k8s"]);
    for p in d["partitions"].as_array().cloned().unwrap_or_default() {
        let isr: Vec<u64> = p["isr"].as_array().cloned().unwrap_or_default().iter().filter_map(Value::as_u64).collect();
        assert!(isr.contains(&2), "pod 2 reported ready before it rejoined the ISR: {p}");
    }
    let consumed = strata(&pods[1].bootstrap(), &["consume", "k8s", "--from-beginning", "--format", "%v\\n"]);
    assert!(consumed.status.success(), "{}", String::from_utf8_lossy(&consumed.stderr));
    assert_eq!(String::from_utf8_lossy(&consumed.stdout).lines().count(), 200);
    assert_eq!(pods.iter().map(|p| p.ordinal).collect::<Vec<_>>(), [1, 2, 3]);
}

/// Where the container mounts volume `name`.
fn mount_path(sts: &Value, name: &str) -> String {
    container(sts)["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
        .iter()
        .find(|m| m["name"] == name)
        .and_then(|m| m["mountPath"].as_str())
        .unwrap_or_else(|| panic!("the {name} volume mount"))
        .to_string()
}

/// Free loopback ports for pods 1..=3.
fn loopback_ports() -> BTreeMap<u32, Ports> {
    (1..=3)
        .map(|n| (n, Ports { client: free_port(), controller: free_port(), http: free_port(), kafka: free_port() }))
        .collect()
}

/// The container's args.
fn container_args(sts: &Value) -> Vec<String> {
    container(sts)["args"]
        .as_array()
        .expect("container args")
        .iter()
        .map(|a| a.as_str().expect("string arg").to_string())
        .collect()
}

/// Every document of a multi-document YAML file of `secure/`.
fn load_all(file: &str) -> Vec<Value> {
    let path = manifests().join("secure").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.split("\n---\n")
        .map(|doc| serde_yaml_ng::from_str(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}

/// The StatefulSet as the secure overlay makes it: the base one with the
/// overlay's JSON patches (RFC 6902) applied, as kustomize applies them.
fn secure_statefulset() -> Value {
    let k = load("secure/kustomization.yaml");
    assert_eq!(k["resources"], serde_json::json!(["../", "certificates.yaml"]), "{k}");
    let mut sts = resource("StatefulSet");
    let patches = k["patches"].as_array().expect("patches");
    assert_eq!(patches.len(), 1, "one patch, of the StatefulSet");
    assert_eq!(patches[0]["target"]["kind"], "StatefulSet");
    assert_eq!(patches[0]["target"]["name"], sts["metadata"]["name"]);
    let ops: Value = serde_yaml_ng::from_str(patches[0]["patch"].as_str().expect("an inline patch")).expect("ops");
    let patch: json_patch::Patch = serde_json::from_value(ops).expect("a JSON patch");
    json_patch::patch(&mut sts, &patch).expect("the patch applies to the base StatefulSet");
    sts
}

/// The secure overlay's projected volume: (secret, key, path) per item.
fn projected_items(sts: &Value) -> Vec<(String, String, String)> {
    let volumes = sts["spec"]["template"]["spec"]["volumes"].as_array().expect("volumes");
    let tls = volumes.iter().find(|v| v["name"] == "tls").expect("a tls volume");
    let mut out = Vec::new();
    for source in tls["projected"]["sources"].as_array().expect("projected sources") {
        let secret = source["secret"]["name"].as_str().expect("a secret").to_string();
        for item in source["secret"]["items"].as_array().expect("items") {
            let s = |f: &str| item[f].as_str().expect("key and path").to_string();
            out.push((secret.clone(), s("key"), s("path")));
        }
    }
    out
}

#[test]
fn the_secure_overlay_issues_what_each_pod_reads() {
    let sts = secure_statefulset();
    let certs: Vec<Value> = load_all("certificates.yaml").into_iter().filter(|r| r["kind"] == "Certificate").collect();
    let items = projected_items(&sts);
    for n in 1..=3 {
        let pod = format!("strata-{n}");
        let env: BTreeMap<String, String> = pod_env(&sts, n, "strata", "z").into_iter().collect();
        let mount = mount_path(&sts, "tls");
        for (var, key) in
            [("STRATA_TLS_CERT_FILE", "tls.crt"), ("STRATA_TLS_KEY_FILE", "tls.key"), ("STRATA_TLS_CA_FILE", "ca.crt")]
        {
            let file = env[var].strip_prefix(&format!("{mount}/")).unwrap_or_else(|| panic!("{var} under {mount}"));
            let (secret, k, _) = items.iter().find(|(_, _, p)| p == file).unwrap_or_else(|| panic!("{pod}: {file}"));
            assert_eq!(k, key, "{pod}: {var}");
            let cert = certs.iter().find(|c| c["spec"]["secretName"] == secret.as_str()).expect("a Certificate");
            let names: Vec<&str> =
                cert["spec"]["dnsNames"].as_array().expect("dnsNames").iter().filter_map(Value::as_str).collect();
            assert!(names.contains(&format!("strata-node-{n}").as_str()), "{pod} is node {n}: {names:?}");
            assert!(names.contains(&"localhost") && cert["spec"]["ipAddresses"] == serde_json::json!(["127.0.0.1"]));
            let usages = &cert["spec"]["usages"];
            assert_eq!(usages, &serde_json::json!(["server auth", "client auth"]), "{pod}: node links are mutual TLS");
        }
    }
    let admin = certs.iter().find(|c| c["spec"]["commonName"] == "admin").expect("an admin certificate");
    assert_eq!(admin["spec"]["usages"], serde_json::json!(["client auth"]));
    let env: BTreeMap<String, String> = pod_env(&sts, 1, "strata", "z").into_iter().collect();
    assert!(env["STRATA_SUPER_USERS"].split(',').any(|p| p == "User:admin"), "the admin certificate's principal");
    assert_eq!(env["STRATA_AUTHORIZER"], "on");
    for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
        assert_eq!(container(&sts)[probe]["httpGet"]["scheme"], "HTTPS", "{probe}: the HTTP port serves TLS");
    }
}

#[test]
fn three_pods_from_the_secure_overlay_form_a_tls_cluster_with_users_and_acls() {
    let sts = secure_statefulset();
    let service = sts["spec"]["serviceName"].as_str().expect("serviceName").to_string();
    let namespace = load("kustomization.yaml")["namespace"].as_str().unwrap_or("default").to_string();
    let root = tempfile::tempdir().expect("tempdir");
    let config_text = resource("ConfigMap")["data"]["strata.toml"].as_str().expect("strata.toml").to_string();
    // cert-manager's part: a CA and a certificate per node, laid out as the
    // projected volume lays out their Secrets' keys.
    let tls_root = root.path().join("tls");
    let authority = strata_tls::generate::Authority::new("test cluster CA").expect("CA");
    let items = projected_items(&sts);
    for n in 1..=3 {
        let (cert, key) = authority.issue(&[&format!("strata-node-{n}"), "localhost"]).expect("a node certificate");
        for (secret, k, path) in &items {
            if secret != &format!("strata-node-{n}-tls") {
                continue;
            }
            let body = match k.as_str() {
                "tls.crt" => &cert,
                "tls.key" => &key,
                "ca.crt" => authority.cert_pem(),
                other => panic!("unexpected key {other}"),
            };
            let file = tls_root.join(path);
            std::fs::create_dir_all(file.parent().expect("a folder")).expect("mkdir");
            std::fs::write(&file, body).expect("write");
        }
    }
    let mount = mount_path(&sts, "tls");
    let config_mount = mount_path(&sts, "config");
    let ports = loopback_ports();
    let args = container_args(&sts);
    let pod = PodSpec {
        sts: &sts,
        service: &service,
        namespace: &namespace,
        ports: &ports,
        root: root.path(),
        extra_mount: Some((&mount, &tls_root)),
    };
    let pods: Vec<Pod> = (1..=3u32).map(|n| pod.start(n, &config_text, &config_mount, &args)).collect();
    // The kubelet's HTTPS probes (it does not verify; this does).
    let ca = tls_root.join("strata-1/ca.crt");
    let client_tls = strata_tls::ClientTls::new(
        &strata_tls::TlsFiles { ca: Some(ca.clone()), ..Default::default() },
        &[b"http/1.1"],
    )
    .expect("client TLS");
    let readiness = probe_path(&sts, "readinessProbe");
    let started = Instant::now();
    while !pods
        .iter()
        .all(|p| strata_tests::https_get(p.server.http, &readiness, &client_tls).is_some_and(|(c, _)| c == 200))
    {
        if started.elapsed() > Duration::from_secs(60) {
            let tails: Vec<String> = pods
                .iter()
                .map(|p| {
                    let log = p.server.log();
                    let tail: Vec<&str> = log.lines().rev().take(12).collect::<Vec<_>>().into_iter().rev().collect();
                    format!("pod {}:\n{}", p.ordinal, tail.join("\n"))
                })
                .collect();
            panic!("the three secure pods are ready over HTTPS: not within 60s\n{}", tails.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(http_get(pods[0].server.http, &readiness).is_none_or(|(c, _)| c != 200), "no plaintext HTTP");

    // The operator's first step (`kubectl exec strata-1 -- strata ...`, on
    // the pod's loopback): the first user, then everything as that user.
    let cli = |args: &[&str], user: Option<(&str, &str)>, input: &str| {
        let mut c = Command::new(binary("strata"));
        c.args(["--bootstrap", &pods[0].bootstrap()]).arg("--ca-file").arg(&ca).args(args);
        if let Some((u, p)) = user {
            c.env("STRATA_USER", u).env("STRATA_PASSWORD", p);
        }
        strata_tests::cli::run_with_input(&mut c, input)
    };
    let ok = |out: std::process::Output| {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    ok(cli(&["user", "create", "admin"], None, "s3cret\n"));
    let anonymous = cli(&["topic", "list"], None, "");
    assert!(String::from_utf8_lossy(&anonymous.stderr).contains("authenticates its clients"), "{anonymous:?}");
    let admin = Some(("admin", "s3cret"));
    ok(cli(&["topic", "create", "k8s", "-p", "3", "-r", "3"], admin, ""));
    let records: String = (0..50).map(|i| format!("record-{i}\n")).collect();
    ok(cli(&["produce", "k8s", "--acks", "all"], admin, &records));
    assert_eq!(ok(cli(&["consume", "k8s"], admin, "")).lines().count(), 50);
    // A user without ACLs is authenticated and refused.
    ok(cli(&["user", "create", "app"], admin, "app-pw\n"));
    let refused = cli(&["consume", "k8s"], Some(("app", "app-pw")), "");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("TOPIC_AUTHORIZATION_FAILED"), "{refused:?}");

    // The preStop hook of pod 2 speaks HTTPS with the pod's own env.
    let pre_stop: Vec<String> = container(&sts)["lifecycle"]["preStop"]["exec"]["command"]
        .as_array()
        .expect("preStop")
        .iter()
        .map(|a| a.as_str().expect("string").replace("127.0.0.1:9702", &format!("127.0.0.1:{}", ports[&2].http)))
        .collect();
    let tls_env: Vec<(String, String)> = pod_env(&sts, 2, &namespace, "zone-2")
        .into_iter()
        .filter(|(k, _)| k.starts_with("STRATA_TLS_"))
        .map(|(k, v)| (k, v.replacen(&mount, &tls_root.display().to_string(), 1)))
        .collect();
    let drained = Command::new(binary("strata-server")).args(&pre_stop[1..]).envs(tls_env).output().expect("preStop");
    assert!(drained.status.success(), "preStop over HTTPS: {}", String::from_utf8_lossy(&drained.stderr));
}

/// Produces `record-<i>` for each i with acks=all through `bootstrap`.
fn produce_lines(bootstrap: &str, range: std::ops::Range<u32>) {
    use std::io::Write;
    let mut produce = Command::new(binary("strata"))
        .args(["--bootstrap", bootstrap, "produce", "k8s", "--acks", "all"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("strata produce");
    {
        let mut stdin = produce.stdin.take().expect("stdin");
        for i in range {
            writeln!(stdin, "record-{i}").expect("write");
        }
    }
    let produced = produce.wait_with_output().expect("produce");
    assert!(produced.status.success(), "{}", String::from_utf8_lossy(&produced.stderr));
}
