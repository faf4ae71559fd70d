#@ A job factory's table: each array element exports its row's values (rows:
#@ one case branch per row) and its index as CROUPIER_TASK_INDEX (index: the
#@ element's index variable, whatever the scheduler)
export CROUPIER_TASK_INDEX="@{index}"
case "$CROUPIER_TASK_INDEX" in
@{rows}
*) echo "croupier: element $CROUPIER_TASK_INDEX is not in the parameter table" >&2; exit 64 ;;
esac
