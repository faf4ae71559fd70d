#@ qstat in the JSON form (ask_json), and in the text form (ask_text) when it
#@ failed for a reason other than single ids; each after its form mark
echo @{json_mark}; @{ask_json}
if [ "$croupier_rc" -ne 0 ] && [ -n "$(croupier_others)" ]; then
  echo @{text_mark}; @{ask_text}
fi;
