# bash completion for ppflow: commands, their options, template and sink
# names, and files. Installed as share/bash-completion/completions/ppflow.
_ppflow()
{
    local cur prev cmd
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD-1]}
    local commands="run test validate init templates sinks suggest decode jsonpath schedule status plan help"
    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W "$commands --help --version" -- "$cur"))
        return
    fi
    cmd=${COMP_WORDS[1]}
    case "$prev" in
    -o|--output|--secret-file|--flow)
        COMPREPLY=($(compgen -f -- "$cur"))
        return ;;
    esac
    local opts=""
    case "$cmd" in
    run|test) opts="--set -n --limit -q --quiet -v --verbose --log-format --help" ;;
    validate) opts="--help" ;;
    init) opts="-o --output --force --help" ;;
    schedule) opts="-j --max-parallel --grace --metrics-port --metrics-bind --list -q --quiet -v --verbose --log-format --help" ;;
    status) opts="--json --help" ;;
    plan) opts="--set --help" ;;
    suggest) opts="--json -n --limit -w --window -o --save -s --set -v --verbose --help" ;;
    decode) opts="--json --online --flow --base-url --principal --secret-file --batch --allow-insecure-http -v --help" ;;
    jsonpath) opts="--paths --help" ;;
    help) COMPREPLY=($(compgen -W "$commands" -- "$cur")); return ;;
    esac
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
        return
    fi
    case "$cmd" in
    init|templates)
        COMPREPLY=($(compgen -W "$(ppflow templates 2>/dev/null | cut -d' ' -f1)" -- "$cur")) ;;
    sinks)
        COMPREPLY=($(compgen -W "$(ppflow sinks 2>/dev/null | grep -E '^[a-z]' | cut -d' ' -f1)" -- "$cur")) ;;
    *)
        COMPREPLY=($(compgen -f -- "$cur")) ;;
    esac
}
complete -o filenames -F _ppflow ppflow
