//! The `influence` command as a user runs it: `layers` on both exporters' files, `explain` on
//! an image, on a `.safetensors` input checked against Captum's numbers, on a folder (and its
//! resume), and its errors.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/onnx")
}

fn influence(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_influence"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("influence-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn f32s(bytes: &[u8], name: &str) -> (Vec<f32>, Vec<usize>) {
    let st = safetensors::SafeTensors::deserialize(bytes).unwrap();
    let t = st.tensor(name).unwrap();
    (
        t.data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect(),
        t.shape().to_vec(),
    )
}

#[test]
fn layers_lists_module_paths_of_both_exporters() {
    for export in ["dynamo", "torchscript"] {
        let m = fixtures().join(format!("resnet18.{export}.onnx"));
        let (ok, out, err) = influence(&["layers", m.to_str().unwrap()]);
        assert!(ok, "{err}");
        for name in ["layer3", "layer3.0", "layer2.0.downsample", "maxpool", "fc"] {
            assert!(
                out.lines()
                    .any(|l| l.starts_with("module") && l.split_whitespace().nth(1) == Some(name)),
                "{export}: {name} missing:\n{out}"
            );
        }
        let (ok, all, _) = influence(&["layers", m.to_str().unwrap(), "--all", "--json"]);
        assert!(ok);
        let v: serde_json::Value = serde_json::from_str(&all).unwrap();
        let kinds: Vec<&str> = v["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["kind"].as_str().unwrap())
            .collect();
        assert!(kinds.contains(&"module") && kinds.contains(&"node") && kinds.contains(&"value"));
    }
}

/// `explain` on the fixture's inputs (a `.safetensors` file) gives Captum's numbers.
#[test]
fn explain_matches_captum() {
    let out = tmp("captum");
    let model = fixtures().join("resnet18.dynamo.onnx");
    let input = fixtures().join("resnet18.safetensors");
    let (ok, stdout, err) = influence(&[
        "explain",
        model.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--layer",
        "layer3",
        "--target",
        "3",
        "--n-steps",
        "8",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(stdout.contains("attribution [2, 16, 2, 2]"), "{stdout}");
    let (ours, shape) = f32s(
        &std::fs::read(out.join("attribution.safetensors")).unwrap(),
        "attribution",
    );
    assert_eq!(shape, [2, 16, 2, 2]);
    let reference = std::fs::read(input).unwrap();
    let st = safetensors::SafeTensors::deserialize(&reference).unwrap();
    let r: Vec<f64> = st
        .tensor("case0")
        .unwrap()
        .data()
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let scale = r.iter().fold(0f64, |m, v| m.max(v.abs()));
    let err = ours
        .iter()
        .zip(&r)
        .fold(0f64, |m, (a, b)| m.max((*a as f64 - b).abs()))
        / scale;
    assert!(err < 5e-6, "relative error {err}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("attribution.json")).unwrap())
            .unwrap();
    assert_eq!(report["examples"][0]["target"], 3);
    assert_eq!(
        report["examples"][0]["top_channels"]
            .as_array()
            .unwrap()
            .len(),
        10
    );
}

fn write_png(path: &Path, seed: u8) {
    let img = image::RgbImage::from_fn(40, 30, |x, y| {
        image::Rgb([
            (x * 6) as u8 ^ seed,
            (y * 8) as u8,
            128u8.wrapping_add(seed),
        ])
    });
    img.save(path).unwrap();
}

#[test]
fn explain_an_image_and_a_folder_with_resume() {
    let dir = tmp("images");
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    write_png(&images.join("a.png"), 0);
    write_png(&images.join("b.png"), 77);
    let model = fixtures().join("mobilenet_v2.torchscript.onnx");
    let out = dir.join("one");
    let (ok, stdout, err) = influence(&[
        "explain",
        model.to_str().unwrap(),
        "--input",
        images.join("a.png").to_str().unwrap(),
        "--layer",
        "features.3",
        "--size",
        "32",
        "--n-steps",
        "4",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(stdout.contains("wrote"), "{stdout}");
    let png = image::open(out.join("a.png")).unwrap();
    assert!(png.width() > 500 && png.height() > 200);
    let (x, shape) = f32s(
        &std::fs::read(out.join("attribution.safetensors")).unwrap(),
        "input",
    );
    assert_eq!(shape, [1, 3, 32, 32]);
    // ImageNet's normalisation of the resized image: finite, and centred near zero.
    assert!(x.iter().all(|v| v.is_finite() && v.abs() < 3.0));

    let folder = dir.join("folder");
    let args = [
        "explain",
        model.to_str().unwrap(),
        "--input",
        images.to_str().unwrap(),
        "--layer",
        "features.3",
        "--size",
        "32",
        "--n-steps",
        "4",
        "--batch-size",
        "1",
        "--out",
        folder.to_str().unwrap(),
    ];
    let (ok, first, err) = influence(&args);
    assert!(ok, "{err}");
    assert!(
        first.contains("2 examples in 2 batches (0 resumed)"),
        "{first}"
    );
    let classes = || {
        let s: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(folder.join("dataset/summary.json")).unwrap(),
        )
        .unwrap();
        s["classes"].clone()
    };
    let before = classes();
    let (ok, again, err) = influence(&args);
    assert!(ok, "{err}");
    assert!(again.contains("(2 resumed)"), "{again}");
    // The same numbers from the stored batches.
    assert_eq!(before, classes());
}

#[test]
fn errors_name_what_exists() {
    let model = fixtures().join("resnet18.dynamo.onnx");
    let input = fixtures().join("resnet18.safetensors");
    let out = tmp("errors");
    let run = |layer: &str| {
        influence(&[
            "explain",
            model.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--layer",
            layer,
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let (ok, _, err) = run("layr3");
    assert!(
        !ok && err.contains("closest names") && err.contains("\"layer3\""),
        "{err}"
    );
    let (ok, _, err) = run("layer3.0.conv1");
    assert!(
        !ok && err.contains("fused") && err.contains("layer3.0.bn1"),
        "{err}"
    );
    let (ok, _, err) = influence(&["layers", "/no/such/model.onnx"]);
    assert!(!ok && err.contains("cannot read"), "{err}");
    let garbage = out.join("garbage.onnx");
    std::fs::write(&garbage, b"not a model at all").unwrap();
    let (ok, _, err) = influence(&["layers", garbage.to_str().unwrap()]);
    assert!(!ok && err.contains("not a valid ONNX model"), "{err}");
}
