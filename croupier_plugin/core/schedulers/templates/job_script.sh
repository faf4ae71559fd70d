#@ The main part of a job that runs a script (path: quoted; args: a space and
#@ the quoted arguments, or nothing): executable, or read by bash
croupier_script=@{path}
if [ -x "$croupier_script" ]; then "$croupier_script"@{args}; else bash "$croupier_script"@{args}; fi
