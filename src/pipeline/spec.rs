//! The pipeline file: a `[pipeline]` header, an optional `[slurm]` table and one `[stages.NAME]`
//! table per stage. Every key of a stage other than `command`, `after` and `slurm` is a flag of
//! that stage's `starpipe` command (`shard_size = 5000` → `--shard-size 5000`).
//!
//! Parsing keeps the line of every key, so an error can point at it before any work starts.

use super::PipelineError;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// A stage's `starpipe` command; what the pipeline knows about each is its row of [`STAGES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StageCommand {
    Mock,
    Ingest,
    TrainEncoder,
    Embed,
    Train,
    Finetune,
    Calibrate,
    Evaluate,
    Infer,
    Catalog,
    Repeats,
    Report,
}

/// What the pipeline knows about one stage command. Adding a command is one row of [`STAGES`]
/// (and its flags in the command line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageKind {
    pub command: StageCommand,
    /// The subcommand name on the command line and in pipeline files.
    pub name: &'static str,
    /// A per-file stage, split into `--shard i/N` tasks (job arrays); the others run once.
    pub sharded: bool,
    /// How a finished run names this stage's result and the file inside its `out` to open (empty:
    /// `out` itself); None when a run does not point at it.
    pub result: Option<(&'static str, &'static str)>,
    /// Its `--out` may name a file (the catalogue's Parquet or FITS), so what must be writable
    /// before the work starts is the parent; the others name a directory.
    pub out_may_be_file: bool,
}

/// Every stage command, in the order the README lists them.
pub const STAGES: [StageKind; 12] = {
    use StageCommand as C;
    const fn row(command: C, name: &'static str, sharded: bool) -> StageKind {
        StageKind { command, name, sharded, result: None, out_may_be_file: false }
    }
    [
        row(C::Mock, "mock", false),
        row(C::Ingest, "ingest", true),
        row(C::TrainEncoder, "train-encoder", false),
        row(C::Embed, "embed", true),
        row(C::Train, "train", false),
        row(C::Finetune, "finetune", false),
        row(C::Calibrate, "calibrate", false),
        StageKind { result: Some(("evaluation", "")), ..row(C::Evaluate, "evaluate", false) },
        row(C::Infer, "infer", true),
        StageKind { result: Some(("catalogue", "")), out_may_be_file: true, ..row(C::Catalog, "catalog", false) },
        row(C::Repeats, "repeats", false),
        StageKind { result: Some(("report", "index.html")), ..row(C::Report, "report", false) },
    ]
};

impl StageCommand {
    /// This command's row of [`STAGES`].
    pub fn kind(self) -> &'static StageKind {
        STAGES.iter().find(|k| k.command == self).expect("every stage command has a row in STAGES")
    }

    /// The command a pipeline file names.
    pub fn from_name(name: &str) -> Option<Self> {
        STAGES.iter().find(|k| k.name == name).map(|k| k.command)
    }

    /// The subcommand name on the command line.
    pub fn as_str(self) -> &'static str {
        self.kind().name
    }

    /// Per-file stages split into `--shard i/N` tasks (job arrays); the others run once.
    pub fn is_sharded(self) -> bool {
        self.kind().sharded
    }
}

/// A scalar parameter value.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Scalar {
    fn command_line(&self) -> String {
        match self {
            Scalar::Str(s) => s.clone(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

/// One flag of a stage, with the line it was written on.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub key: String,
    pub values: Vec<Scalar>,
    /// A bare `true`/`false` (a switch such as `no_rest_frame = true`).
    pub switch: Option<bool>,
    pub line: usize,
}

impl Param {
    /// `shard_size` → `--shard-size`.
    pub fn flag(&self) -> String {
        format!("--{}", self.key.replace('_', "-"))
    }

    /// The string values: candidate paths for dependencies and input fingerprints.
    pub fn strings(&self) -> impl Iterator<Item = &str> {
        self.values.iter().filter_map(|v| if let Scalar::Str(s) = v { Some(s.as_str()) } else { None })
    }
}

/// One stage of the pipeline.
#[derive(Debug, Clone)]
pub struct Stage {
    pub name: String,
    pub command: StageCommand,
    pub params: Vec<Param>,
    /// Stages this one runs after, besides those whose outputs it reads.
    pub after: Vec<String>,
    /// Extra sbatch options for this stage (e.g. `--gpus=1`, `--mem=32G`).
    pub slurm: Vec<String>,
    pub line: usize,
}

impl Stage {
    pub fn param(&self, key: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.key == key)
    }

    /// The `out` path (every stage has one: the pipeline checks it).
    pub fn out(&self) -> &str {
        self.param("out").and_then(|p| p.strings().next()).unwrap_or("")
    }

    /// The command line after `starpipe`, without the runner's `--shard`.
    pub fn argv(&self) -> Vec<String> {
        let mut argv = vec![self.command.as_str().to_string()];
        for p in &self.params {
            match p.switch {
                Some(true) => argv.push(p.flag()),
                Some(false) => {}
                None => {
                    // Repeating the flag suits both multi-value flags (`--spectra a --spectra b`)
                    // and comma-delimited lists.
                    for v in &p.values {
                        // `--flag -1` would read -1 as a flag; `--flag=-1` lets the parser judge it.
                        let value = v.command_line();
                        if value.starts_with('-') {
                            argv.push(format!("{}={value}", p.flag()));
                        } else {
                            argv.push(p.flag());
                            argv.push(value);
                        }
                    }
                }
            }
        }
        argv
    }
}

/// A parsed pipeline file.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// Where it came from (a path, or `built-in demo`), for messages.
    pub source: String,
    pub name: String,
    pub description: String,
    /// Where relative paths of the stages point; relative to the current directory.
    pub workdir: PathBuf,
    /// Tasks per sharded stage (`--shard i/N`), unless the command line says otherwise.
    pub shards: usize,
    /// Shell lines printed after a successful run (`{workdir}` is replaced).
    pub try_commands: Vec<String>,
    /// sbatch options for every job.
    pub slurm_options: Vec<String>,
    /// In file order.
    pub stages: Vec<Stage>,
}

/// A stage table as parsed: every key and value with its byte span.
type RawStage = Spanned<BTreeMap<Spanned<String>, Spanned<toml::Value>>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    pipeline: RawHeader,
    #[serde(default)]
    paths: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    slurm: Option<RawSlurm>,
    #[serde(default)]
    stages: BTreeMap<Spanned<String>, RawStage>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeader {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    workdir: Option<String>,
    #[serde(default)]
    shards: Option<Spanned<i64>>,
    #[serde(default, rename = "try")]
    try_commands: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlurm {
    #[serde(default)]
    options: Vec<String>,
}

/// The most tasks a sharded stage may have: far beyond any real release (a task per ~100 files of
/// LAMOST's 11 million), small enough that a run's bookkeeping stays in memory (10⁹ shards
/// used to abort on a 32 GB allocation). The command line's `--shards` agrees.
pub const MAX_SHARDS: usize = 100_000;

const SAFE_NAME_RULE: &str = "may use ASCII letters, digits, '.', '-' and '_' only, starting with a letter or digit";

/// Names that go into file names, job names and `#SBATCH` lines unquoted: nothing a shell or
/// sbatch could read as more than a word.
fn is_safe_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// `{name}` in a stage value replaced by `[paths] name`, so a path a user must edit is written
/// once; any other `{…}` is an error that lists the names defined.
fn substitute(value: &str, paths: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            return Err(format!("unclosed '{{' in '{value}'"));
        };
        let name = &rest[open + 1..open + close];
        let known: Vec<&str> = paths.keys().map(String::as_str).collect();
        let path = paths.get(name).ok_or_else(|| {
            format!(
                "'{{{name}}}' is not defined in [paths] (defined: {})",
                if known.is_empty() { "none".into() } else { known.join(", ") }
            )
        })?;
        out.push_str(path);
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|&b| b == b'\n').count() + 1
}

fn scalar(v: &toml::Value) -> Option<Scalar> {
    Some(match v {
        toml::Value::String(s) => Scalar::Str(s.clone()),
        toml::Value::Integer(i) => Scalar::Int(*i),
        toml::Value::Float(f) => Scalar::Float(*f),
        toml::Value::Boolean(b) => Scalar::Bool(*b),
        _ => return None,
    })
}

impl Pipeline {
    /// Reads and checks a pipeline file.
    pub fn from_file(path: &Path) -> Result<Self, PipelineError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| PipelineError::Read { path: path.to_path_buf(), source: e })?;
        Self::parse(&path.display().to_string(), &text)
    }

    /// Parses pipeline text; `source` names it in errors.
    pub fn parse(source: &str, text: &str) -> Result<Self, PipelineError> {
        let invalid = |offset: usize, key: &str, reason: String| PipelineError::Invalid {
            source_name: source.to_string(),
            line: line_of(text, offset),
            key: key.to_string(),
            reason,
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(0, |s| line_of(text, s.start));
            let reason = e.message().trim().to_string();
            PipelineError::Invalid { source_name: source.to_string(), line, key: String::new(), reason }
        })?;
        let name = raw.pipeline.name;
        if !is_safe_name(name.get_ref()) {
            return Err(invalid(
                name.span().start,
                "pipeline.name",
                format!(
                    "'{}': pipeline names {SAFE_NAME_RULE} (they name SLURM jobs and batch scripts)",
                    name.get_ref().escape_debug()
                ),
            ));
        }
        let shards = match raw.pipeline.shards {
            None => 1,
            Some(s) if (1..=MAX_SHARDS as i64).contains(s.get_ref()) => *s.get_ref() as usize,
            Some(s) => {
                return Err(invalid(s.span().start, "pipeline.shards", format!("must be within 1..={MAX_SHARDS}")));
            }
        };
        let mut paths = BTreeMap::new();
        for (name, value) in raw.paths {
            if !is_safe_name(name.get_ref()) {
                return Err(invalid(
                    name.span().start,
                    &format!("paths.{}", name.get_ref().escape_debug()),
                    format!("path names {SAFE_NAME_RULE}"),
                ));
            }
            paths.insert(name.into_inner(), value.into_inner());
        }
        let mut stages = Vec::new();
        for (name, table) in raw.stages {
            let stage_line = line_of(text, name.span().start);
            let name_str = name.get_ref().clone();
            if !is_safe_name(&name_str) {
                return Err(invalid(
                    name.span().start,
                    &format!("stages.{}", name_str.escape_debug()),
                    format!("stage names {SAFE_NAME_RULE} (they name files, jobs and batch scripts)"),
                ));
            }
            let mut command = None;
            let mut after = Vec::new();
            let mut slurm = Vec::new();
            let mut params = Vec::new();
            for (key, value) in table.into_inner() {
                let at = key.span().start;
                let full_key = format!("stages.{name_str}.{}", key.get_ref());
                let strings = |v: &toml::Value| -> Result<Vec<String>, PipelineError> {
                    let list = match v {
                        toml::Value::Array(a) => a.clone(),
                        other => vec![other.clone()],
                    };
                    list.iter()
                        .map(|x| x.as_str().map(str::to_string))
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(|| invalid(at, &full_key, "expected a string or a list of strings".into()))
                };
                match key.get_ref().as_str() {
                    "command" => {
                        let c = value.get_ref().as_str().unwrap_or("");
                        command = Some(StageCommand::from_name(c).ok_or_else(|| {
                            let known: Vec<_> = STAGES.iter().map(|k| k.name).collect();
                            invalid(at, &full_key, format!("unknown command '{c}' (known: {})", known.join(", ")))
                        })?);
                    }
                    "after" => after = strings(value.get_ref())?,
                    "slurm" => slurm = strings(value.get_ref())?,
                    "shard" => {
                        return Err(invalid(
                            at,
                            &full_key,
                            "the runner sets --shard itself (use pipeline.shards or --shards)".into(),
                        ));
                    }
                    k => {
                        let v = value.get_ref();
                        let (values, switch) = match v {
                            toml::Value::Boolean(b) => (vec![], Some(*b)),
                            toml::Value::Array(a) => {
                                let vals = a.iter().map(scalar).collect::<Option<Vec<_>>>().ok_or_else(|| {
                                    invalid(at, &full_key, "a list may hold strings and numbers only".into())
                                })?;
                                if vals.is_empty() {
                                    return Err(invalid(at, &full_key, "empty list".into()));
                                }
                                (vals, None)
                            }
                            other => (
                                vec![scalar(other).ok_or_else(|| {
                                    invalid(at, &full_key, "expected a string, number, boolean or list".into())
                                })?],
                                None,
                            ),
                        };
                        let values = values
                            .into_iter()
                            .map(|v| match v {
                                Scalar::Str(s) => substitute(&s, &paths).map(Scalar::Str),
                                other => Ok(other),
                            })
                            .collect::<Result<Vec<_>, String>>()
                            .map_err(|reason| invalid(at, &full_key, reason))?;
                        params.push(Param { key: k.to_string(), values, switch, line: line_of(text, at) });
                    }
                }
            }
            let command = command.ok_or_else(|| {
                invalid(
                    name.span().start,
                    &format!("stages.{name_str}"),
                    "no `command` (e.g. command = \"ingest\")".into(),
                )
            })?;
            params.sort_by_key(|p| p.line);
            let stage = Stage { name: name_str.clone(), command, params, after, slurm, line: stage_line };
            if stage.out().is_empty() {
                return Err(invalid(
                    name.span().start,
                    &format!("stages.{name_str}.out"),
                    "every stage needs an `out` path".into(),
                ));
            }
            stages.push(stage);
        }
        stages.sort_by_key(|s| s.line);
        if stages.is_empty() {
            return Err(PipelineError::Invalid {
                source_name: source.to_string(),
                line: 0,
                key: "stages".into(),
                reason: "no stages".into(),
            });
        }
        Ok(Pipeline {
            source: source.to_string(),
            name: name.into_inner(),
            description: raw.pipeline.description,
            workdir: PathBuf::from(raw.pipeline.workdir.unwrap_or_else(|| ".".into())),
            shards,
            try_commands: raw.pipeline.try_commands,
            slurm_options: raw.slurm.map(|s| s.options).unwrap_or_default(),
            stages,
        })
    }

    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.name == name)
    }

    /// An error pointing at a stage's key (or the stage header when the key is absent).
    pub fn error_at(&self, stage: &Stage, key: Option<&str>, reason: String) -> PipelineError {
        let (line, key) = match key.and_then(|k| stage.param(k)) {
            Some(p) => (p.line, format!("stages.{}.{}", stage.name, p.key)),
            None => (stage.line, format!("stages.{}", stage.name)),
        };
        PipelineError::Invalid { source_name: self.source.clone(), line, key, reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stage_command_has_exactly_one_row_and_a_unique_name() {
        // Exhaustive: a new command does not compile here until it is numbered, and then this
        // test asks for its row.
        fn number(c: StageCommand) -> usize {
            use StageCommand::*;
            match c {
                Mock => 0,
                Ingest => 1,
                TrainEncoder => 2,
                Embed => 3,
                Train => 4,
                Finetune => 5,
                Calibrate => 6,
                Evaluate => 7,
                Infer => 8,
                Catalog => 9,
                Repeats => 10,
                Report => 11,
            }
        }
        let mut seen = [0usize; 12];
        let mut names = std::collections::BTreeSet::new();
        for k in STAGES {
            seen[number(k.command)] += 1;
            assert!(names.insert(k.name), "two rows named {}", k.name);
            assert_eq!(StageCommand::from_name(k.name), Some(k.command));
            assert_eq!(k.command.kind(), &k);
        }
        assert_eq!(seen, [1; 12], "rows per command");
        assert_eq!(StageCommand::from_name("calibrate-all"), None);
        assert!(StageCommand::Infer.is_sharded() && !StageCommand::Catalog.is_sharded());
    }

    const OK: &str = r#"
[pipeline]
name = "t"
shards = 2

[stages.ingest]
command = "ingest"
survey = "lamost"
input = "files"
out = "spectra"
no_rest_frame = true
degrade_to_r = false

[stages.train]
command = "train"
spectra = ["spectra", "more"]
labels = "files/labels.parquet"
max_epochs = 3
val_fraction = 0.25
out = "model"
slurm = ["--mem=8G"]
"#;

    #[test]
    fn stages_become_command_lines() {
        let p = Pipeline::parse("t.toml", OK).unwrap();
        assert_eq!(p.shards, 2);
        assert_eq!(p.stages.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["ingest", "train"]);
        assert_eq!(
            p.stages[0].argv(),
            ["ingest", "--survey", "lamost", "--input", "files", "--out", "spectra", "--no-rest-frame"]
        );
        assert_eq!(
            p.stages[1].argv(),
            [
                "train",
                "--spectra",
                "spectra",
                "--spectra",
                "more",
                "--labels",
                "files/labels.parquet",
                "--max-epochs",
                "3",
                "--val-fraction",
                "0.25",
                "--out",
                "model"
            ]
        );
        assert_eq!(p.stages[1].slurm, ["--mem=8G"]);
        assert_eq!(p.stages[1].param("max_epochs").unwrap().line, 18);
    }

    #[test]
    fn errors_name_the_key_and_line() {
        let bad = OK.replace("command = \"train\"", "command = \"trian\"");
        let e = Pipeline::parse("t.toml", &bad).unwrap_err().to_string();
        assert!(e.contains("t.toml:15") && e.contains("stages.train.command") && e.contains("trian"), "{e}");
        let bad = OK.replace("shards = 2", "shards = 2\nshard_count = 3");
        let e = Pipeline::parse("t.toml", &bad).unwrap_err().to_string();
        assert!(e.contains("t.toml:5") && e.contains("shard_count"), "{e}");
        let bad = OK.replace("out = \"model\"", "");
        let e = Pipeline::parse("t.toml", &bad).unwrap_err().to_string();
        assert!(e.contains("t.toml:14") && e.contains("stages.train.out"), "{e}");
        let bad = OK.replace("max_epochs = 3", "max_epochs = { a = 1 }");
        let e = Pipeline::parse("t.toml", &bad).unwrap_err().to_string();
        assert!(e.contains("t.toml:18") && e.contains("stages.train.max_epochs"), "{e}");
    }

    #[test]
    fn hostile_names_are_refused_with_key_and_line() {
        let hostile = ["evil\ntouch /tmp/x\n#", "a'b", "a\"b", "$(touch x)", "`id`", "a;b", "étoile", "a b", "-rf", ""];
        for name in hostile {
            let toml_name = name.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
            let bad = OK.replace("name = \"t\"", &format!("name = \"{toml_name}\""));
            let e = Pipeline::parse("t.toml", &bad).unwrap_err().to_string();
            assert!(e.contains("t.toml:3") && e.contains("pipeline.name"), "{name:?}: {e}");
            let bad = OK.replace("[stages.train]", &format!("[stages.\"{toml_name}\"]"));
            let e = Pipeline::parse("t.toml", &bad).unwrap_err().to_string();
            assert!(e.contains("t.toml:14") && e.contains("stage names may use"), "{name:?}: {e}");
        }
        let ok = OK.replace("name = \"t\"", "name = \"desi-dr1_v2.0\"");
        assert_eq!(Pipeline::parse("t.toml", &ok).unwrap().name, "desi-dr1_v2.0");
    }

    #[test]
    fn paths_are_written_once_and_substituted_into_stage_values() {
        let text = OK
            .replace("[stages.ingest]", "[paths]\nrelease = \"/data/dr1\"\n\n[stages.ingest]")
            .replace("input = \"files\"", "input = \"{release}/healpix\"");
        let p = Pipeline::parse("t.toml", &text).unwrap();
        assert!(
            p.stages[0].argv().windows(2).any(|w| w == ["--input", "/data/dr1/healpix"]),
            "{:?}",
            p.stages[0].argv()
        );
        let bad = text.replace("{release}/healpix", "{relase}/healpix");
        let e = Pipeline::parse("t.toml", &bad).unwrap_err().to_string();
        assert!(e.contains("t.toml:12") && e.contains("stages.ingest.input") && e.contains("defined: release"), "{e}");
    }
}
