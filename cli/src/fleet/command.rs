//! What the command run on each node is, as far as the fleet cares: whether it prints JSON,
//! whether it is an `apply` to roll out, and whether it reads standard input.

/// `-o json`, `-ojson`, `-o=json`, `--output json`, `--output=json`.
pub fn wants_json(command: &[String]) -> bool {
    output_options(command).any(|(_, value)| value == Some("json"))
}

/// An `apply` that changes nodes (not `--dry-run`): rolled out rather than fanned out.
pub fn is_rollout(command: &[String]) -> bool {
    command.first().is_some_and(|c| c == "apply") && !command.iter().any(|a| a == "--dry-run")
}

/// The check after an apply: `diff` with apply's arguments, printing JSON.
pub fn verify_command(apply: &[String]) -> Vec<String> {
    let skip: Vec<usize> = output_options(apply).flat_map(|(at, _)| at).collect();
    let mut diff = vec!["diff".to_string()];
    diff.extend(
        apply
            .iter()
            .enumerate()
            .skip(1)
            .filter(|(i, _)| !skip.contains(i))
            .map(|(_, a)| a.clone()),
    );
    diff.extend(["-o".to_string(), "json".to_string()]);
    diff
}

/// Whether the command reads standard input (`-R`, `--restore`, or a `-` file): the fleet
/// reads it once and gives each node a copy.
pub fn reads_stdin(command: &[String]) -> bool {
    command
        .iter()
        .any(|a| a == "-R" || a == "--restore" || a == "-")
}

/// The output options of `command`: the word positions they take and their value.
fn output_options(command: &[String]) -> impl Iterator<Item = (Vec<usize>, Option<&str>)> {
    command.iter().enumerate().filter_map(|(i, arg)| {
        let next = || command.get(i + 1).map(String::as_str);
        match arg.as_str() {
            "-o" | "--output" => Some((vec![i, i + 1], next())),
            a => a
                .strip_prefix("--output=")
                .or_else(|| a.strip_prefix("-o="))
                .or_else(|| {
                    a.strip_prefix("-o")
                        .filter(|v| *v == "json" || *v == "text")
                })
                .map(|v| (vec![i], Some(v))),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn json_output_is_recognised_in_every_spelling() {
        let cases = [
            ("-ln -o json", true),
            ("-ln -ojson", true),
            ("link show -o=json", true),
            ("link show --output json", true),
            ("diff -f x --output=json", true),
            ("-ln -o text", false),
            ("-ln", false),
            // A bare -o is ipvsadm's --ops.
            ("-A -u 10.0.0.1:53 -o", false),
        ];
        for (line, want) in cases {
            assert_eq!(wants_json(&words(line)), want, "{line}");
        }
    }

    #[test]
    fn only_a_real_apply_rolls_out() {
        let cases = [
            ("apply -f x.yaml", true),
            ("apply -f x.yaml --prune", true),
            ("apply -f x.yaml --dry-run", false),
            ("diff -f x.yaml", false),
            ("-ln", false),
            ("link apply", false),
        ];
        for (line, want) in cases {
            assert_eq!(is_rollout(&words(line)), want, "{line}");
        }
    }

    #[test]
    fn verification_is_diff_with_apply_s_arguments_in_json() {
        let cases = [
            ("apply -f x.yaml", "diff -f x.yaml -o json"),
            ("apply -f x.yaml --prune", "diff -f x.yaml --prune -o json"),
            ("apply -o text -f x.yaml", "diff -f x.yaml -o json"),
            ("apply -f x.yaml --output=json", "diff -f x.yaml -o json"),
            ("apply -ojson -f x.yaml", "diff -f x.yaml -o json"),
            ("apply --output json -f x.yaml", "diff -f x.yaml -o json"),
        ];
        for (apply, want) in cases {
            assert_eq!(verify_command(&words(apply)), words(want), "{apply}");
        }
    }

    #[test]
    fn restore_and_dash_read_stdin() {
        let cases = [
            ("-R", true),
            ("--restore --dry-run", true),
            ("apply -f -", true),
            ("-ln", false),
            ("apply -f x.yaml", false),
        ];
        for (line, want) in cases {
            assert_eq!(reads_stdin(&words(line)), want, "{line}");
        }
    }
}
