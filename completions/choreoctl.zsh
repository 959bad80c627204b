#compdef choreoctl

_choreoctl_completion() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _CHOREOCTL_COMPLETE=complete_zsh choreoctl)
}

compdef _choreoctl_completion choreoctl
