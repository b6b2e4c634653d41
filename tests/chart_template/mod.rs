//! A small, honest substitute for `helm template`, for the few Go-template constructs the chart
//! uses (no helm binary can be installed where the tests run). It knows exactly these:
//!
//! - `{{ .Values.a.b }}`, `{{ .Release.Name }}` / `.Namespace` / `.Service`, `{{ .Chart.X }}`,
//!   `{{ . }}` and `$` inside `with`;
//! - `{{ if PIPELINE }} … {{ else }} … {{ end }}` and `{{ with PIPELINE }} … {{ end }}`;
//! - pipelines with `|` and the functions `toYaml`, `indent`, `nindent`, `quote`, `int`, `gt`,
//!   `not`, `and`, `or`, `eq`;
//! - `.Files.Get "path"` and `(.Files.Glob "dir/*.ext").AsConfig`;
//! - whitespace trimming with `{{-` and `-}}`, as Go templates do.
//!
//! Anything else is an error naming the construct, so a template that grows beyond this set fails
//! the chart test instead of being rendered wrongly.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// What a template sees: the chart directory (for `.Files`) and the root object.
pub struct Context {
    pub chart_dir: PathBuf,
    pub root: Value,
}

impl Context {
    /// Root object as Helm builds it for `helm template RELEASE --namespace NS`.
    pub fn new(chart_dir: &Path, values: Value, release: &str, namespace: &str) -> Context {
        let chart: Value = serde_yaml::from_str(
            &std::fs::read_to_string(chart_dir.join("Chart.yaml")).expect("Chart.yaml"),
        )
        .expect("Chart.yaml is YAML");
        // Helm exposes Chart.yaml fields with capitalised names (.Chart.AppVersion).
        let mut chart_obj = serde_json::Map::new();
        for (k, v) in chart.as_object().expect("Chart.yaml is a map") {
            let mut c = k.chars();
            let cap = match c.next() {
                Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
                None => String::new(),
            };
            chart_obj.insert(cap, v.clone());
        }
        let root = serde_json::json!({
            "Values": values,
            "Release": { "Name": release, "Namespace": namespace, "Service": "Helm" },
            "Chart": Value::Object(chart_obj),
        });
        Context {
            chart_dir: chart_dir.to_owned(),
            root,
        }
    }
}

#[derive(Debug)]
enum Token {
    Text(String),
    Action(String),
}

/// Splits a template into text and actions, applying `{{-` / `-}}` trimming.
fn tokenize(src: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut rest = src;
    let mut trim_next = false;
    while let Some(open) = rest.find("{{") {
        let mut text = rest[..open].to_owned();
        if trim_next {
            text = text.trim_start().to_owned();
        }
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| format!("unclosed action near {:?}", &rest[open..]))?;
        let mut action = &after[..close];
        if let Some(a) = action.strip_prefix('-') {
            text = text.trim_end().to_owned();
            action = a;
        }
        trim_next = false;
        if let Some(a) = action.strip_suffix('-') {
            trim_next = true;
            action = a;
        }
        out.push(Token::Text(text));
        out.push(Token::Action(action.trim().to_owned()));
        rest = &after[close + 2..];
    }
    let mut text = rest.to_owned();
    if trim_next {
        text = text.trim_start().to_owned();
    }
    out.push(Token::Text(text));
    Ok(out)
}

#[derive(Debug)]
enum Node {
    Text(String),
    Print(String),
    If(String, Vec<Node>, Vec<Node>),
    With(String, Vec<Node>, Vec<Node>),
}

fn parse(
    tokens: &mut std::iter::Peekable<std::vec::IntoIter<Token>>,
) -> Result<(Vec<Node>, &'static str), String> {
    let mut nodes = Vec::new();
    while let Some(t) = tokens.next() {
        match t {
            Token::Text(s) => nodes.push(Node::Text(s)),
            Token::Action(a) if a == "end" => return Ok((nodes, "end")),
            Token::Action(a) if a == "else" => return Ok((nodes, "else")),
            Token::Action(a) if a.starts_with("/*") => {}
            Token::Action(a) => {
                let block = if let Some(p) = a.strip_prefix("if ") {
                    Some(("if", p.to_owned()))
                } else {
                    a.strip_prefix("with ").map(|p| ("with", p.to_owned()))
                };
                match block {
                    Some((kind, pipeline)) => {
                        let (then, how) = parse(tokens)?;
                        let otherwise = if how == "else" {
                            let (o, how2) = parse(tokens)?;
                            if how2 != "end" {
                                return Err(format!("{kind} {pipeline}: no end after else"));
                            }
                            o
                        } else if how == "end" {
                            Vec::new()
                        } else {
                            return Err(format!("{kind} {pipeline}: no end"));
                        };
                        nodes.push(if kind == "if" {
                            Node::If(pipeline, then, otherwise)
                        } else {
                            Node::With(pipeline, then, otherwise)
                        });
                    }
                    None => {
                        for kw in ["range ", "define ", "include ", "template ", "block "] {
                            if a.starts_with(kw) {
                                return Err(format!("unsupported construct: {{{{ {a} }}}}"));
                            }
                        }
                        nodes.push(Node::Print(a));
                    }
                }
            }
        }
    }
    Ok((nodes, "eof"))
}

/// Renders one template; `Err` names the construct it cannot handle.
pub fn render(ctx: &Context, template: &str) -> Result<String, String> {
    let tokens = tokenize(template)?;
    let mut it = tokens.into_iter().peekable();
    let (nodes, how) = parse(&mut it)?;
    if how != "eof" {
        return Err(format!("unbalanced `{how}`"));
    }
    let mut out = String::new();
    exec(ctx, &nodes, &ctx.root, &mut out)?;
    Ok(out)
}

fn exec(ctx: &Context, nodes: &[Node], dot: &Value, out: &mut String) -> Result<(), String> {
    for n in nodes {
        match n {
            Node::Text(s) => out.push_str(s),
            Node::Print(p) => out.push_str(&print(&pipeline(ctx, p, dot)?)?),
            Node::If(p, then, otherwise) => {
                let v = pipeline(ctx, p, dot)?;
                exec(ctx, if truthy(&v) { then } else { otherwise }, dot, out)?;
            }
            Node::With(p, then, otherwise) => {
                let v = pipeline(ctx, p, dot)?;
                if truthy(&v) {
                    exec(ctx, then, &v, out)?;
                } else {
                    exec(ctx, otherwise, dot, out)?;
                }
            }
        }
    }
    Ok(())
}

/// Go template truth: false, 0, nil and empty strings, maps and lists are false.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn print(v: &Value) -> Result<String, String> {
    Ok(match v {
        // Helm prints a missing value as an empty string.
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => return Err(format!("printing a map or list directly: {other}")),
    })
}

/// Splits on `sep` outside quotes and parentheses.
fn split_top(s: &str, sep: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut quoted = false;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '"' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            _ => {}
        }
        if c == sep && depth == 0 && !quoted {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    parts.push(cur);
    parts
        .into_iter()
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

fn pipeline(ctx: &Context, p: &str, dot: &Value) -> Result<Value, String> {
    let mut prev: Option<Value> = None;
    for cmd in split_top(p, '|') {
        prev = Some(command(ctx, &cmd, dot, prev)?);
    }
    prev.ok_or_else(|| format!("empty pipeline `{p}`"))
}

fn command(ctx: &Context, cmd: &str, dot: &Value, piped: Option<Value>) -> Result<Value, String> {
    let words = split_top(cmd, ' ');
    let (head, rest) = words.split_first().ok_or("empty command")?;
    let mut args = rest
        .iter()
        .map(|w| term(ctx, w, dot))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(v) = piped {
        args.push(v);
    }
    let num = |v: &Value| -> Result<f64, String> {
        match v {
            Value::Number(n) => n.as_f64().ok_or("not a number".into()),
            Value::String(s) => s.parse().map_err(|_| format!("not a number: {s}")),
            Value::Bool(b) => Ok(if *b { 1.0 } else { 0.0 }),
            Value::Null => Ok(0.0),
            other => Err(format!("not a number: {other}")),
        }
    };
    let arity = |n: usize| -> Result<(), String> {
        if args.len() == n {
            Ok(())
        } else {
            Err(format!("{head} takes {n} arguments, got {}", args.len()))
        }
    };
    let text = |v: &Value| print(v);
    match head.as_str() {
        "toYaml" => {
            arity(1)?;
            let y = serde_yaml::to_string(&args[0]).map_err(|e| e.to_string())?;
            Ok(Value::String(y.trim_end_matches('\n').to_owned()))
        }
        "indent" | "nindent" => {
            arity(2)?;
            let n = num(&args[0])? as usize;
            let pad = " ".repeat(n);
            let s = text(&args[1])?;
            let body = format!("{pad}{}", s.replace('\n', &format!("\n{pad}")));
            Ok(Value::String(if head == "nindent" {
                format!("\n{body}")
            } else {
                body
            }))
        }
        "quote" => {
            arity(1)?;
            Ok(Value::String(
                serde_json::to_string(&text(&args[0])?).map_err(|e| e.to_string())?,
            ))
        }
        "int" => {
            arity(1)?;
            Ok(Value::from(num(&args[0])? as i64))
        }
        "gt" => {
            arity(2)?;
            Ok(Value::Bool(num(&args[0])? > num(&args[1])?))
        }
        "eq" => {
            arity(2)?;
            Ok(Value::Bool(args[0] == args[1]))
        }
        "not" => {
            arity(1)?;
            Ok(Value::Bool(!truthy(&args[0])))
        }
        "and" => Ok(Value::Bool(args.iter().all(truthy))),
        "or" => Ok(Value::Bool(args.iter().any(truthy))),
        ".Files.Get" => {
            arity(1)?;
            let path = text(&args[0])?;
            std::fs::read_to_string(ctx.chart_dir.join(&path))
                .map(Value::String)
                .map_err(|e| format!(".Files.Get {path}: {e}"))
        }
        _ if rest.is_empty() && args.is_empty() => term(ctx, head, dot),
        other => Err(format!("unsupported function `{other}` in `{cmd}`")),
    }
}

fn term(ctx: &Context, w: &str, dot: &Value) -> Result<Value, String> {
    if let Some(s) = w.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        return Ok(Value::String(s.to_owned()));
    }
    if let Ok(n) = w.parse::<i64>() {
        return Ok(Value::from(n));
    }
    if let Some(inner) = w
        .strip_prefix("(.Files.Glob ")
        .and_then(|s| s.strip_suffix(").AsConfig"))
    {
        let pattern = inner.trim().trim_matches('"');
        return files_as_config(&ctx.chart_dir, pattern).map(Value::String);
    }
    if let Some(inner) = w.strip_prefix('(').and_then(|s| s.strip_suffix(')')) {
        return pipeline(ctx, inner, dot);
    }
    let (base, path) = if w == "." {
        (dot, "")
    } else if w == "$" {
        (&ctx.root, "")
    } else if let Some(p) = w.strip_prefix("$.") {
        (&ctx.root, p)
    } else if let Some(p) = w.strip_prefix('.') {
        (dot, p)
    } else {
        return Err(format!("unsupported term `{w}`"));
    };
    let mut v = base;
    for key in path.split('.').filter(|k| !k.is_empty()) {
        v = match v {
            Value::Object(o) => o.get(key).unwrap_or(&Value::Null),
            Value::Null => &Value::Null,
            other => return Err(format!("`{w}`: cannot look up {key} in {other}")),
        };
    }
    Ok(v.clone())
}

/// `(.Files.Glob "dir/*.ext").AsConfig`: the matching files as a YAML map base name → content.
fn files_as_config(chart_dir: &Path, pattern: &str) -> Result<String, String> {
    let (dir, file_pat) = pattern
        .rsplit_once('/')
        .ok_or_else(|| format!("glob without a directory: {pattern}"))?;
    let suffix = file_pat
        .strip_prefix('*')
        .ok_or_else(|| format!("only `dir/*suffix` globs are supported: {pattern}"))?;
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(chart_dir.join(dir)).map_err(|e| format!("{dir}: {e}"))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if name.ends_with(suffix) {
            files.insert(
                name,
                std::fs::read_to_string(&path).map_err(|e| e.to_string())?,
            );
        }
    }
    let y = serde_yaml::to_string(&files).map_err(|e| e.to_string())?;
    Ok(y.trim_end_matches('\n').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(values: Value) -> Context {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/hashsched");
        Context::new(&dir, values, "rel", "ns")
    }

    #[test]
    fn substitutes_trims_and_branches_like_go_templates() {
        let c = ctx(serde_json::json!({"n": 2, "m": {"a": "b"}, "off": false, "s": "x"}));
        let t = "a: {{ .Values.s | quote }}\n{{- if gt (int .Values.n) 1 }}\nb: yes\n{{- else }}\nb: no\n{{- end }}\n{{- with .Values.m }}\nm:\n  {{- toYaml . | nindent 2 }}\n{{- end }}\n{{- if .Values.off }}\nnever\n{{- end }}\nr: {{ .Release.Namespace }}\n";
        assert_eq!(
            render(&c, t).unwrap(),
            "a: \"x\"\nb: yes\nm:\n  a: b\nr: ns\n"
        );
    }

    #[test]
    fn refuses_constructs_it_does_not_know() {
        let c = ctx(serde_json::json!({}));
        assert!(render(&c, "{{ range .Values.x }}{{ end }}").is_err());
        assert!(render(&c, "{{ include \"x\" . }}").is_err());
        assert!(render(&c, "{{ .Values.a | default \"b\" }}").is_err());
        assert!(render(&c, "{{ if .Values.a }}").is_err());
    }
}
