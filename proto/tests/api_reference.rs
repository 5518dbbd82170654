//! `docs/api.md`, the API reference, is generated from the `.proto` files' comments; this test
//! fails when it is out of date. Regenerate it with
//!
//! ```sh
//! UPDATE_API_DOCS=1 cargo test -p ipvs-proto --test api_reference
//! ```
//!
//! The comments come from the descriptor set the build script compiles with protox (which keeps
//! source code info): services with their RPCs, messages with their fields, enums with their
//! values, each with the comment written above it (or after it, on the same line).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::source_code_info::Location;
use prost_types::{
    DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorProto,
    FileDescriptorSet, ServiceDescriptorProto,
};

const PACKAGE: &str = "ipvs.agent.v1";
const REGENERATE: &str = "UPDATE_API_DOCS=1 cargo test -p ipvs-proto --test api_reference";

// Field numbers of descriptor.proto, the steps of a source location's path.
const FILE_SYNTAX: i32 = 12;
const FILE_MESSAGE: i32 = 4;
const FILE_ENUM: i32 = 5;
const FILE_SERVICE: i32 = 6;
const MESSAGE_FIELD: i32 = 2;
const MESSAGE_NESTED: i32 = 3;
const MESSAGE_ENUM: i32 = 4;
const ENUM_VALUE: i32 = 2;
const SERVICE_METHOD: i32 = 2;

fn api_md() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/api.md")
}

#[test]
fn api_reference_is_up_to_date() {
    let fds = FileDescriptorSet::decode(ipvs_proto::v1::FILE_DESCRIPTOR_SET)
        .expect("the build script's descriptor set decodes");
    let generated = render(&fds);
    let path = api_md();
    if std::env::var_os("UPDATE_API_DOCS").is_some() {
        std::fs::write(&path, &generated).expect("writing docs/api.md");
        eprintln!("wrote {}", path.display());
        return;
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    if current != generated {
        let line = current
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| current.lines().count().min(generated.lines().count()));
        panic!(
            "docs/api.md is not what the .proto files' comments give (first difference at line \
             {}); regenerate it with\n\n    {REGENERATE}\n",
            line + 1
        );
    }
}

#[test]
fn the_reference_has_every_service_message_and_enum() {
    let fds = FileDescriptorSet::decode(ipvs_proto::v1::FILE_DESCRIPTOR_SET)
        .expect("the build script's descriptor set decodes");
    let md = render(&fds);
    let mut seen = 0;
    for file in ours(&fds) {
        for s in &file.service {
            assert!(
                md.contains(&format!("\n### {}\n", s.name())),
                "{}",
                s.name()
            );
            for m in &s.method {
                assert!(md.contains(&format!("\n#### {}.{}\n", s.name(), m.name())));
            }
            seen += 1;
        }
        for m in &file.message_type {
            assert!(
                md.contains(&format!("\n### {}\n", m.name())),
                "{}",
                m.name()
            );
            seen += 1;
        }
        for e in &file.enum_type {
            assert!(
                md.contains(&format!("\n### {}\n", e.name())),
                "{}",
                e.name()
            );
            seen += 1;
        }
    }
    assert!(seen > 50, "only {seen} definitions");
    // Comments made it through: protox kept the source code info.
    assert!(md.contains("Creates a virtual service (ipvsadm -A)"));
    assert!(md.contains("| `port` | `uint32` | 0..65535; 0 only for persistent services"));
    // Every heading has an anchor of its own, and links resolve to one.
    let mut anchors = std::collections::HashSet::new();
    for heading in md.lines().filter(|l| l.starts_with('#')) {
        let a = anchor(heading.trim_start_matches('#').trim());
        assert!(
            anchors.insert(a),
            "two headings give the anchor of {heading:?}"
        );
    }
    for target in md.split("](#").skip(1).filter_map(|s| s.split(')').next()) {
        assert!(anchors.contains(target), "no heading for #{target}");
    }
}

fn ours(fds: &FileDescriptorSet) -> impl Iterator<Item = &FileDescriptorProto> {
    fds.file.iter().filter(|f| f.package() == PACKAGE)
}

/// The comments of one file, by source path.
struct Comments<'a>(HashMap<&'a [i32], &'a Location>);

impl<'a> Comments<'a> {
    fn new(file: &'a FileDescriptorProto) -> Self {
        let map = file
            .source_code_info
            .iter()
            .flat_map(|info| &info.location)
            .map(|l| (l.path.as_slice(), l))
            .collect();
        Self(map)
    }

    /// The comment above the element at `path`, else the one after it on its line; as lines,
    /// each without the one space after `//`, trailing blank lines dropped.
    fn of(&self, path: &[i32]) -> Vec<String> {
        let Some(l) = self.0.get(path) else {
            return Vec::new();
        };
        let text = l
            .leading_comments
            .as_deref()
            .filter(|c| !c.trim().is_empty())
            .or(l.trailing_comments.as_deref())
            .unwrap_or("");
        let mut lines: Vec<String> = text
            .lines()
            .map(|s| s.strip_prefix(' ').unwrap_or(s).trim_end().to_owned())
            .collect();
        while lines.last().is_some_and(String::is_empty) {
            lines.pop();
        }
        while lines.first().is_some_and(String::is_empty) {
            lines.remove(0);
        }
        lines
    }

    /// Where the element at `path` starts (line, column), to keep the file's order.
    fn start(&self, path: &[i32]) -> (i32, i32) {
        self.0
            .get(path)
            .map_or((i32::MAX, 0), |l| (l.span[0], l.span[1]))
    }
}

/// Escapes what Markdown would take for markup (`*`, `<`, `\`), outside code spans; in a table
/// cell also `|`.
fn escape(text: &str, in_table: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, part) in text.split('`').enumerate() {
        if i > 0 {
            out.push('`');
        }
        for c in part.chars() {
            let code = i % 2 == 1;
            match c {
                '|' if in_table => out.push_str("\\|"),
                '*' | '<' | '\\' if !code => {
                    out.push('\\');
                    out.push(c);
                }
                _ => out.push(c),
            }
        }
    }
    out
}

/// A comment as paragraphs, lists kept.
fn block(out: &mut String, comment: &[String]) {
    if comment.is_empty() {
        return;
    }
    for line in comment {
        out.push_str(&escape(line, false));
        out.push('\n');
    }
    out.push('\n');
}

/// A comment in one table cell: its lines joined, a blank line as a break.
fn cell(comment: &[String]) -> String {
    let mut out = String::new();
    for line in comment {
        if line.is_empty() {
            out.push_str("<br><br>");
        } else {
            if !out.is_empty() && !out.ends_with('>') {
                out.push(' ');
            }
            out.push_str(&escape(line.trim(), true));
        }
    }
    out
}

/// GitHub's anchor for a heading: lower case, spaces as `-`, punctuation other than `-` and `_`
/// dropped.
fn anchor(heading: &str) -> String {
    heading
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// A type name as a link: ours to its heading, well-known types to protobuf's reference.
fn type_link(name: &str) -> String {
    let name = name.trim_start_matches('.');
    if let Some(local) = name.strip_prefix(PACKAGE).and_then(|n| n.strip_prefix('.')) {
        format!("[`{local}`](#{})", anchor(local))
    } else if let Some(wkt) = name.strip_prefix("google.protobuf.") {
        format!(
            "[`{name}`](https://protobuf.dev/reference/protobuf/google.protobuf/#{})",
            wkt.to_ascii_lowercase()
        )
    } else {
        format!("`{name}`")
    }
}

fn scalar(t: Type) -> &'static str {
    match t {
        Type::Double => "double",
        Type::Float => "float",
        Type::Int64 => "int64",
        Type::Uint64 => "uint64",
        Type::Int32 => "int32",
        Type::Fixed64 => "fixed64",
        Type::Fixed32 => "fixed32",
        Type::Bool => "bool",
        Type::String => "string",
        Type::Bytes => "bytes",
        Type::Uint32 => "uint32",
        Type::Sfixed32 => "sfixed32",
        Type::Sfixed64 => "sfixed64",
        Type::Sint32 => "sint32",
        Type::Sint64 => "sint64",
        Type::Group | Type::Message | Type::Enum => "",
    }
}

fn field_type(f: &FieldDescriptorProto, maps: &HashMap<String, &DescriptorProto>) -> String {
    let base = |f: &FieldDescriptorProto| match f.r#type() {
        Type::Message | Type::Enum | Type::Group => type_link(f.type_name()),
        t => format!("`{}`", scalar(t)),
    };
    if let Some(entry) = maps.get(f.type_name().trim_start_matches('.')) {
        let kv: Vec<String> = entry.field.iter().map(base).collect();
        return format!("map\\<{}\\>", kv.join(", "));
    }
    let t = base(f);
    if f.label() == Label::Repeated {
        format!("repeated {t}")
    } else if f.proto3_optional() {
        format!("optional {t}")
    } else {
        t
    }
}

/// Map entry messages by full name: their fields are shown as `map<K, V>`.
fn map_entries(fds: &FileDescriptorSet) -> HashMap<String, &DescriptorProto> {
    fn walk<'a>(
        prefix: &str,
        m: &'a DescriptorProto,
        out: &mut HashMap<String, &'a DescriptorProto>,
    ) {
        let name = format!("{prefix}.{}", m.name());
        for n in &m.nested_type {
            walk(&name, n, out);
        }
        if m.options.as_ref().is_some_and(|o| o.map_entry()) {
            out.insert(name, m);
        }
    }
    let mut out = HashMap::new();
    for f in &fds.file {
        for m in &f.message_type {
            walk(f.package(), m, &mut out);
        }
    }
    out
}

fn render(fds: &FileDescriptorSet) -> String {
    let maps = map_entries(fds);
    let mut out = String::new();
    out.push_str("# API reference: `ipvs.agent.v1`\n\n");
    let _ = writeln!(
        out,
        "<!-- Generated from proto/ipvs/agent/v1/*.proto; do not edit. Regenerate with\n     \
         {REGENERATE} -->\n"
    );
    out.push_str(
        "The gRPC API of `ipvs-agent`, from the comments of its `.proto` files \
         ([`proto/ipvs/agent/v1/`](../proto/ipvs/agent/v1/)). \
         The conventions every message follows (addresses as strings, durations, zero values as \
         defaults) are at the top of [`types.proto`](#ipvsagentv1typesproto); errors carry an \
         [`ErrorDetail`](#errordetail).\n\n",
    );

    // Contents: the services first, then each file's definitions.
    out.push_str("## Contents\n\n");
    for file in ours(fds) {
        for s in &file.service {
            let _ = writeln!(out, "- [{}](#{})", s.name(), anchor(s.name()));
            for m in &s.method {
                let heading = format!("{}.{}", s.name(), m.name());
                let _ = writeln!(out, "  - [{}](#{})", m.name(), anchor(&heading));
            }
        }
    }
    for file in ours(fds) {
        let _ = writeln!(out, "- [{}](#{})", file.name(), anchor(file.name()));
    }
    out.push('\n');

    for file in ours(fds) {
        let comments = Comments::new(file);
        let _ = writeln!(out, "## {}\n", file.name());
        block(&mut out, &comments.of(&[FILE_SYNTAX]));
        // Services, messages and enums in the order the file declares them.
        let mut items: Vec<((i32, i32), Item)> = Vec::new();
        for (i, s) in file.service.iter().enumerate() {
            let path = vec![FILE_SERVICE, index(i)];
            items.push((comments.start(&path), Item::Service(s, path)));
        }
        for (i, m) in file.message_type.iter().enumerate() {
            let path = vec![FILE_MESSAGE, index(i)];
            items.push((comments.start(&path), Item::Message(m, String::new(), path)));
        }
        for (i, e) in file.enum_type.iter().enumerate() {
            let path = vec![FILE_ENUM, index(i)];
            items.push((comments.start(&path), Item::Enum(e, String::new(), path)));
        }
        items.sort_by_key(|(start, _)| *start);
        for (_, item) in items {
            match item {
                Item::Service(s, path) => service(&mut out, &comments, s, &path),
                Item::Message(m, prefix, path) => {
                    message(&mut out, &comments, &maps, m, &prefix, &path);
                }
                Item::Enum(e, prefix, path) => enumeration(&mut out, &comments, e, &prefix, &path),
            }
        }
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

enum Item<'a> {
    Service(&'a ServiceDescriptorProto, Vec<i32>),
    Message(&'a DescriptorProto, String, Vec<i32>),
    Enum(&'a EnumDescriptorProto, String, Vec<i32>),
}

fn index(i: usize) -> i32 {
    i32::try_from(i).expect("fewer than 2^31 definitions")
}

fn child(path: &[i32], kind: i32, i: usize) -> Vec<i32> {
    let mut p = path.to_vec();
    p.extend([kind, index(i)]);
    p
}

fn service(out: &mut String, comments: &Comments<'_>, s: &ServiceDescriptorProto, path: &[i32]) {
    let _ = writeln!(out, "### {}\n", s.name());
    block(out, &comments.of(path));
    out.push_str("| RPC | Request | Response |\n|---|---|---|\n");
    for m in &s.method {
        let heading = format!("{}.{}", s.name(), m.name());
        let stream = |yes: bool| if yes { "stream " } else { "" };
        let _ = writeln!(
            out,
            "| [{}](#{}) | {}{} | {}{} |",
            m.name(),
            anchor(&heading),
            stream(m.client_streaming()),
            type_link(m.input_type()),
            stream(m.server_streaming()),
            type_link(m.output_type()),
        );
    }
    out.push('\n');
    for (i, m) in s.method.iter().enumerate() {
        let _ = writeln!(out, "#### {}.{}\n", s.name(), m.name());
        block(out, &comments.of(&child(path, SERVICE_METHOD, i)));
        let _ = writeln!(
            out,
            "Request: {}. Response: {}{}.\n",
            type_link(m.input_type()),
            if m.server_streaming() {
                "a stream of "
            } else {
                ""
            },
            type_link(m.output_type()),
        );
    }
}

fn message(
    out: &mut String,
    comments: &Comments<'_>,
    maps: &HashMap<String, &DescriptorProto>,
    m: &DescriptorProto,
    prefix: &str,
    path: &[i32],
) {
    if m.options.as_ref().is_some_and(|o| o.map_entry()) {
        return;
    }
    let name = format!("{prefix}{}", m.name());
    let _ = writeln!(out, "### {name}\n");
    block(out, &comments.of(path));
    if m.field.is_empty() {
        out.push_str("No fields.\n\n");
    } else {
        out.push_str("| Field | Type | Description |\n|---|---|---|\n");
        for (i, f) in m.field.iter().enumerate() {
            let mut description = String::new();
            if let Some(o) = f.oneof_index.filter(|_| !f.proto3_optional()) {
                let oneof = usize::try_from(o)
                    .ok()
                    .and_then(|o| m.oneof_decl.get(o))
                    .map_or("", |d| d.name());
                let _ = write!(description, "One of `{oneof}`. ");
            }
            description.push_str(&cell(&comments.of(&child(path, MESSAGE_FIELD, i))));
            let _ = writeln!(
                out,
                "| `{}` | {} | {} |",
                f.name(),
                field_type(f, maps),
                description.trim_end()
            );
        }
        out.push('\n');
    }
    let nested = format!("{name}.");
    for (i, n) in m.nested_type.iter().enumerate() {
        message(
            out,
            comments,
            maps,
            n,
            &nested,
            &child(path, MESSAGE_NESTED, i),
        );
    }
    for (i, e) in m.enum_type.iter().enumerate() {
        enumeration(out, comments, e, &nested, &child(path, MESSAGE_ENUM, i));
    }
}

fn enumeration(
    out: &mut String,
    comments: &Comments<'_>,
    e: &EnumDescriptorProto,
    prefix: &str,
    path: &[i32],
) {
    let _ = writeln!(out, "### {prefix}{}\n", e.name());
    block(out, &comments.of(path));
    out.push_str("| Value | Number | Description |\n|---|---|---|\n");
    for (i, v) in e.value.iter().enumerate() {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} |",
            v.name(),
            v.number(),
            cell(&comments.of(&child(path, ENUM_VALUE, i)))
        );
    }
    out.push('\n');
}
