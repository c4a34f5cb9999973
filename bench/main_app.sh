# The small disk-backed sample app the read and write areas share (sourced by bench/run.sh).

MAIN_APP_UP=
main_app() { # starts it once -> EMU_URL, AUTH, INST (an active instance), PARTY, GUID
  [ -n "$MAIN_APP_UP" ] && return 0
  start_emulator main --sample --sample-instances 20
  new_token
  ACTIVE_IDS=$(curl -fs -H "$AUTH" "$EMU_URL/storage/api/v1/instances?appId=$APP&size=100" \
    | jq -r '[.instances[] | select(.status.isArchived != true and .process.currentTask != null)] | .[0].id, .[1].id, .[2].id')
  INST=$(echo "$ACTIVE_IDS" | sed -n 1p)
  PARTY=${INST%%/*}; GUID=${INST##*/}
  MAIN_APP_UP=1
}
