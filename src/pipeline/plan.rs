//! Which stage needs which: a stage depends on every stage whose `out` it reads (a path parameter
//! equal to or inside that output) and on the stages named in its `after`. The run order is a
//! topological order that keeps the file order where the dependencies allow.

use super::PipelineError;
use super::spec::{Pipeline, Stage};

/// `./a//b/` → `a/b`: paths compared as the pipeline writes them (relative to the workdir).
pub fn normalize(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    let joined = parts.join("/");
    if path.starts_with('/') { format!("/{joined}") } else { joined }
}

/// Whether `path` is `dir` or lies inside it.
pub fn is_within(path: &str, dir: &str) -> bool {
    path == dir || path.strip_prefix(dir).is_some_and(|rest| rest.starts_with('/'))
}

/// Stages in run order, with each stage's direct dependencies (indices into `Pipeline::stages`).
#[derive(Debug, Clone)]
pub struct Plan {
    pub order: Vec<usize>,
    pub deps: Vec<Vec<usize>>,
}

impl Plan {
    pub fn new(p: &Pipeline) -> Result<Plan, PipelineError> {
        let outs: Vec<String> = p.stages.iter().map(|s| normalize(s.out())).collect();
        for (i, a) in p.stages.iter().enumerate() {
            for (j, b) in p.stages.iter().enumerate() {
                if i != j && is_within(&outs[i], &outs[j]) {
                    return Err(p.error_at(
                        a,
                        Some("out"),
                        format!("writes into stage '{}''s output {} (give every stage its own out)", b.name, outs[j]),
                    ));
                }
            }
        }
        let mut deps = Vec::with_capacity(p.stages.len());
        for s in &p.stages {
            let mut d = reads_from(s, &outs);
            for name in &s.after {
                let j = p
                    .stages
                    .iter()
                    .position(|o| &o.name == name)
                    .ok_or_else(|| p.error_at(s, None, format!("`after` names an unknown stage '{name}'")))?;
                d.push(j);
            }
            d.sort_unstable();
            d.dedup();
            deps.push(d);
        }
        // Kahn's algorithm, always taking the earliest ready stage in file order.
        let n = p.stages.len();
        let mut done = vec![false; n];
        let mut order = Vec::with_capacity(n);
        while order.len() < n {
            let next = (0..n).find(|&i| !done[i] && deps[i].iter().all(|&d| done[d]));
            match next {
                Some(i) => {
                    done[i] = true;
                    order.push(i);
                }
                None => {
                    let stuck = (0..n).find(|&i| !done[i]).expect("some stage is left");
                    return Err(p.error_at(
                        &p.stages[stuck],
                        None,
                        "its inputs form a cycle with other stages' outputs".into(),
                    ));
                }
            }
        }
        Ok(Plan { order, deps })
    }

    /// Every stage `i` needs, directly or not.
    pub fn upstream(&self, i: usize) -> Vec<usize> {
        let mut seen = vec![false; self.deps.len()];
        let mut stack = self.deps[i].clone();
        while let Some(j) = stack.pop() {
            if !std::mem::replace(&mut seen[j], true) {
                stack.extend(&self.deps[j]);
            }
        }
        (0..seen.len()).filter(|&j| seen[j]).collect()
    }
}

/// Flags whose values are input paths (files or directories the stage reads).
pub const INPUT_PATH_KEYS: [&str; 12] = [
    "input",
    "spectra",
    "labels",
    "model",
    "adapter",
    "encoder",
    "predictions",
    "evaluation",
    "catalog",
    "embeddings",
    "embedding_model",
    "embedding_adapter",
];

/// Input paths that no stage writes and that do not exist (relative to `workdir`): reported before
/// any work, so a cluster run does not fail hours in on a mistyped label file.
pub fn missing_inputs(p: &Pipeline, workdir: &std::path::Path) -> Vec<PipelineError> {
    let outs: Vec<String> = p.stages.iter().map(|s| normalize(s.out())).collect();
    let mut errors = Vec::new();
    for s in &p.stages {
        for param in s.params.iter().filter(|q| INPUT_PATH_KEYS.contains(&q.key.as_str())) {
            for v in param.strings() {
                let made_by_a_stage = outs.iter().any(|o| is_within(&normalize(v), o));
                if !made_by_a_stage && !workdir.join(v).exists() {
                    errors.push(p.error_at(
                        s,
                        Some(&param.key),
                        format!("{v} does not exist, and no stage of the pipeline writes it"),
                    ));
                }
            }
        }
    }
    errors
}

fn reads_from(s: &Stage, outs: &[String]) -> Vec<usize> {
    let own = normalize(s.out());
    let mut d = Vec::new();
    for p in s.params.iter().filter(|p| p.key != "out") {
        for v in p.strings() {
            let v = normalize(v);
            d.extend(outs.iter().enumerate().filter(|(_, o)| **o != own && is_within(&v, o)).map(|(j, _)| j));
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline(stages: &str) -> Pipeline {
        Pipeline::parse("t.toml", &format!("[pipeline]\nname = \"t\"\n{stages}")).unwrap()
    }

    #[test]
    fn order_follows_outputs_not_file_order() {
        let p = pipeline(
            r#"
[stages.train]
command = "train"
spectra = "./spectra/"
labels = "files/labels.parquet"
out = "model"
[stages.mock]
command = "mock"
out = "files"
[stages.ingest]
command = "ingest"
input = "files"
out = "spectra"
"#,
        );
        let plan = Plan::new(&p).unwrap();
        let names: Vec<_> = plan.order.iter().map(|&i| p.stages[i].name.as_str()).collect();
        assert_eq!(names, ["mock", "ingest", "train"]);
        assert_eq!(plan.upstream(0), [1, 2]);
    }

    #[test]
    fn cycles_and_nested_outputs_are_refused() {
        let p = pipeline(
            "[stages.a]\ncommand = \"train\"\nspectra = \"b\"\nout = \"a\"\n[stages.b]\ncommand = \"train\"\nspectra = \"a/x\"\nout = \"b\"\n",
        );
        let e = Plan::new(&p).unwrap_err().to_string();
        assert!(e.contains("cycle") && e.contains("t.toml:3"), "{e}");
        let p =
            pipeline("[stages.a]\ncommand = \"mock\"\nout = \"x\"\n[stages.b]\ncommand = \"mock\"\nout = \"x/y\"\n");
        let e = Plan::new(&p).unwrap_err().to_string();
        assert!(e.contains("stages.b.out") && e.contains("t.toml:8"), "{e}");
    }
}
