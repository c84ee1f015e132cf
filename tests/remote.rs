//! Attribution through Burn's remote backend (`--features remote-server`): two server
//! processes on 127.0.0.1 (this test binary started again as `influence_remote::serve`),
//! autodiff here, the kernels there; a dataset split over the two servers gives the numbers
//! of a local run on flex.

mod common;

use std::path::Path;
use std::process::{Child, Command};

use burn::module::Module;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend as _;
use burn_influence::dataset::{DatasetAttribution, DatasetBatch, DatasetSummary};
use burn_influence::{InternalInfluence, remote};
use influence_digits::data::Digits;
use influence_digits::model::{DigitsCnn, DigitsCnnConfig};

type Local = burn_influence::flex::Backend;
type Remote = remote::Backend;

const BATCH: usize = 16;
const BATCHES: usize = 4;
const N_STEPS: usize = 8;

/// Run in a child process by `start_servers`: serves flex on the port in the environment.
#[test]
#[ignore = "run by start_servers in a child process"]
fn server_process_for_the_remote_tests() {
    if let Ok(port) = std::env::var("INFLUENCE_REMOTE_TEST_PORT") {
        influence_remote::serve(port.parse().unwrap());
    }
}

struct Servers(Vec<Child>);

impl Drop for Servers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `n` server processes on free ports of 127.0.0.1, and their addresses once they accept
/// connections.
fn start_servers(n: usize) -> (Servers, Vec<String>) {
    let mut servers = Servers(Vec::new());
    let mut addresses = Vec::new();
    for _ in 0..n {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        servers.0.push(
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "server_process_for_the_remote_tests",
                    "--ignored",
                    "--nocapture",
                ])
                .env("INFLUENCE_REMOTE_TEST_PORT", port.to_string())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        let start = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed().as_secs() < 60,
                "server on port {port} did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        addresses.push(format!("ws://127.0.0.1:{port}"));
    }
    (servers, addresses)
}

fn digits() -> Digits {
    Digits::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("data/digits/digits.csv")).unwrap()
}

/// The digits CNN with the weights in `file` (created from a fixed seed on first use).
fn model<B: burn::tensor::backend::AutodiffBackend>(
    file: &Path,
    device: &B::Device,
) -> DigitsCnn<B> {
    let recorder = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
    if !file.with_extension("mpk").exists() {
        let d = burn_influence::flex::device();
        Local::seed(&d, 11);
        DigitsCnnConfig::new()
            .init::<Local>(&d)
            .save_file(file.to_path_buf(), &recorder)
            .unwrap();
    }
    DigitsCnnConfig::new()
        .init::<B>(device)
        .load_file(file.to_path_buf(), &recorder, device)
        .unwrap()
}

fn batches<B: burn::tensor::backend::Backend>(
    data: &Digits,
    device: &B::Device,
) -> Vec<DatasetBatch<B, 4>> {
    (0..BATCHES)
        .map(|b| {
            let idx: Vec<usize> = (b * BATCH..(b + 1) * BATCH).collect();
            DatasetBatch {
                inputs: data.images::<B>(&idx, device),
                targets: idx.iter().map(|&i| data.labels[i]).collect(),
            }
        })
        .collect()
}

fn assert_close(remote: &DatasetSummary, local: &DatasetSummary) {
    assert_eq!(
        (remote.examples, remote.batches, remote.neurons),
        (local.examples, local.batches, local.neurons)
    );
    let scale = local
        .classes
        .iter()
        .flat_map(|c| c.mean_influence.iter())
        .fold(0f64, |m, v| m.max(v.abs()));
    for (r, l) in remote.classes.iter().zip(&local.classes) {
        assert_eq!(r.count, l.count);
        for (a, b) in r.mean_influence.iter().zip(&l.mean_influence) {
            assert!(
                (a - b).abs() <= 1e-5 * scale,
                "class {}: remote {a}, local {b}",
                r.class
            );
        }
    }
}

#[test]
fn a_dataset_split_over_two_remote_servers_equals_a_local_run() {
    let dir = std::env::temp_dir().join(format!("burn-influence-remote-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let weights = dir.join("weights");
    let data = digits();

    let local_device = burn_influence::flex::device();
    let local_model = model::<Local>(&weights, &local_device);
    let local = DatasetAttribution::new(10)
        .run(
            batches::<Local>(&data, &local_device),
            |_, x, t| {
                InternalInfluence::new(&local_model, "conv2")?
                    .attribute(x)
                    .target(t.to_vec())
                    .n_steps(N_STEPS)
                    .run()
            },
            |_| {},
        )
        .unwrap();

    let (_servers, addresses) = start_servers(2);
    let devices: Vec<remote::Device> = addresses
        .iter()
        .map(|a| remote::remote_device(a).unwrap())
        .collect();
    let models: Vec<DigitsCnn<Remote>> = devices
        .iter()
        .map(|d| model::<Remote>(&weights, d))
        .collect();

    // One call on one server equals the local call, value by value.
    let idx: Vec<usize> = (0..BATCH).collect();
    let targets: Vec<usize> = idx.iter().map(|&i| data.labels[i]).collect();
    let on_server = InternalInfluence::new(&models[0], "conv2")
        .unwrap()
        .attribute(data.images::<Remote>(&idx, &devices[0]))
        .target(targets.clone())
        .n_steps(N_STEPS)
        .run()
        .unwrap()
        .to_vec()
        .unwrap();
    let here = InternalInfluence::new(&local_model, "conv2")
        .unwrap()
        .attribute(data.images::<Local>(&idx, &local_device))
        .target(targets)
        .n_steps(N_STEPS)
        .run()
        .unwrap()
        .to_vec()
        .unwrap();
    let scale = here.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (a, b) in on_server.iter().zip(&here) {
        assert!((a - b).abs() <= 1e-5 * scale, "remote {a}, local {b}");
    }

    // The batches spread over the two servers, one worker each.
    let calls = [
        std::sync::atomic::AtomicUsize::new(0),
        std::sync::atomic::AtomicUsize::new(0),
    ];
    let remote = DatasetAttribution::new(10)
        .workers(2)
        .run(
            batches::<Remote>(&data, &devices[0]),
            |w, x, t| {
                calls[w].fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let x = if w == 0 {
                    x
                } else {
                    Tensor::from_data(x.into_data(), &devices[w])
                };
                InternalInfluence::new(&models[w], "conv2")?
                    .attribute(x)
                    .target(t.to_vec())
                    .n_steps(N_STEPS)
                    .run()
            },
            |_| {},
        )
        .unwrap();
    assert_close(&remote, &local);
    let calls = calls.map(|c| c.into_inner());
    assert_eq!(calls.iter().sum::<usize>(), BATCHES);
    assert!(calls.iter().all(|&c| c > 0), "calls per server: {calls:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_server_that_does_not_answer_is_a_typed_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = remote::remote_device(&format!("ws://127.0.0.1:{port}")).unwrap_err();
    assert!(
        matches!(&err, burn_influence::InfluenceError::RemoteUnreachable { message, .. } if message.contains("no server answers")),
        "{err}"
    );
    let err = remote::remote_device("127.0.0.1:3000").unwrap_err();
    assert!(err.to_string().contains("ws://"), "{err}");
}
