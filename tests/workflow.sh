#!/usr/bin/env bash
# An app owner's round trip through an altinnfs mount (SPEC §2 workflow), as a user would type it.
#
#   tests/workflow.sh MOUNTPOINT [PARTY]
#
# tests/workflow.rs mounts with `-o query=excludeConfirmedBy=ttd --metadata-ttl 1` and makes the
# app require one attachment in Task_1 (minCount 1) and keep archived instances for some days
# (preventInstanceDeletionForDays). Against another mount (`altinnfs demo /tmp/x`), the steps
# that need those are skipped: the refusals when applicationmetadata.json does not ask for them,
# the listing check unless FILTERED=1 (default: 1 when the metadata TTL is short enough).
# Prints one line per step; exits non-zero at the first step that does not do what it should.
set -uo pipefail

MNT=${1:?usage: workflow.sh MOUNTPOINT [PARTY]}
PARTY=${2:-510001}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
NAME="soknad-$$"
META=$MNT/applicationmetadata.json
MIN_ATT=$(jq '[.dataTypes[] | select(.id == "attachment") | .minCount // 0][0] // 0' "$META")
KEEP_DAYS=$(jq '.preventInstanceDeletionForDays // 0' "$META")
FILTERED=${FILTERED:-1}

step() { printf '== %s\n' "$*"; }
fail() {
    printf 'FAIL: %s\n' "$*" >&2
    exit 1
}
# expect_err ERRTEXT CMD...: CMD must fail and say ERRTEXT ("Operation not permitted", ...).
expect_err() {
    local want=$1
    shift
    local out
    if out=$("$@" 2>&1); then
        fail "'$*' succeeded, expected: $want"
    fi
    [[ $out == *"$want"* ]] || fail "'$*' said '$out', expected: $want"
    printf '   refused as expected: %s\n' "$want"
}
attr() { getfattr --only-values -n "user.altinn.$1" "$2" 2>/dev/null; }

step "create an instance: mkdir $PARTY/$NAME"
mkdir "$MNT/$PARTY/$NAME" || fail "mkdir"
ID=$(attr id "$MNT/$PARTY/$NAME") || fail "no user.altinn.id on the new instance"
GUID=${ID#*/}
[[ $ID == "$PARTY/$GUID" && ${#GUID} == 36 ]] || fail "id '$ID'"
INST=$MNT/$PARTY/$GUID
ls "$MNT/$PARTY" | grep -qx "$GUID" || fail "the listing does not show $GUID"
[[ $(stat -c %i "$INST") == $(stat -c %i "$MNT/$PARTY/$NAME") ]] || fail "alias is not the same directory"
[[ $(attr process.currentTask "$INST") == Task_1 ]] || fail "new instance not in Task_1"
grep -q '"elementId": *"Task_1"' "$INST/instance.json" || fail "instance.json: not in Task_1"
echo "   $NAME -> $GUID (Task_1)"

if ((MIN_ATT > 0)); then
    step "next without the required attachment is refused (EPERM), state unchanged"
    expect_err "Operation not permitted" setfattr -n user.altinn.process -v next "$INST"
    [[ $(attr process.currentTask "$INST") == Task_1 ]] || fail "moved despite the refusal"
fi

step "fill in the form: cp model.xml"
cat >"$WORK/model.xml" <<'EOF'
<?xml version="1.0" encoding="utf-8"?>
<Model><navn>Kari Nordmann</navn><beskrivelse>altinnfs workflow</beskrivelse><a>40</a><b>2</b><sum>0</sum></Model>
EOF
FORM=$(ls "$INST/model")
[[ -n $FORM ]] || fail "no form file in model/"
cp "$WORK/model.xml" "$INST/model/$FORM" || fail "cp model.xml"
grep -q "altinnfs workflow" "$INST/model/$FORM" || fail "the form does not read back"

step "attach a PDF: cp vedlegg.pdf"
printf '%%PDF-1.4\n%% altinnfs workflow attachment\n%%%%EOF\n' >"$WORK/vedlegg.pdf"
cp "$WORK/vedlegg.pdf" "$INST/attachment/" || fail "cp attachment"
cmp "$WORK/vedlegg.pdf" "$INST/attachment/vedlegg.pdf" || fail "attachment differs"

step "next: Task_1 -> Task_2 (via the alias)"
setfattr -n user.altinn.process -v next "$MNT/$PARTY/$NAME" || fail "process next"
[[ $(attr process.currentTask "$INST") == Task_2 ]] || fail "not in Task_2: $(attr process.currentTask "$INST")"
grep -q '"elementId": *"Task_2"' "$INST/instance.json" || fail "instance.json not refreshed"

# (A new attachment could still be added in Task_2: Altinn's EnforceDataTypeTaskId is off by
# default, so only the existing elements are locked.)
step "Task_1's data is locked now"
[[ $(attr locked "$INST/attachment/vedlegg.pdf") == true ]] || fail "attachment not locked"
expect_err "Operation not permitted" bash -c "echo more >>'$INST/attachment/vedlegg.pdf'"
expect_err "Operation not permitted" cp "$WORK/model.xml" "$INST/model/$FORM"
cmp "$WORK/vedlegg.pdf" "$INST/attachment/vedlegg.pdf" || fail "locked attachment changed"

step "next:confirm: Task_2 -> end"
setfattr -n user.altinn.process -v next:confirm "$INST" || fail "process next:confirm"
[[ -n $(attr process.ended "$INST") ]] || fail "process not ended"
[[ -n $(attr status.archived "$INST") ]] || fail "not archived"
[[ -z $(attr process.currentTask "$INST") ]] || fail "still has a current task"
grep -q '"isArchived": *true' "$INST/instance.json" || fail "instance.json not archived"

step "an ended process has no next (EPERM)"
expect_err "Operation not permitted" setfattr -n user.altinn.process -v next "$INST"

step "the finished instance's data stays locked"
expect_err "Operation not permitted" bash -c "echo more >>'$INST/model/$FORM'"
expect_err "Operation not permitted" rm "$INST/attachment/vedlegg.pdf"
expect_err "Operation not permitted" cp "$WORK/vedlegg.pdf" "$INST/attachment/second.pdf"
cmp "$WORK/vedlegg.pdf" "$INST/attachment/vedlegg.pdf" || fail "attachment changed"

if ((KEEP_DAYS > 0)); then
    step "rmdir of a freshly archived instance is refused by the app (EPERM)"
    expect_err "Operation not permitted" rmdir "$INST"
    [[ -d $INST ]] || fail "the instance went away"
fi

step "confirm: the app owner has taken it"
setfattr -n user.altinn.confirm -v complete "$INST" || fail "confirm"
grep -q '"stakeholderId": *"ttd"' "$INST/instance.json" || fail "instance.json has no confirmation"

if ((FILTERED)); then
    step "it leaves the unconfirmed listing (excludeConfirmedBy) once the listing is refreshed"
    sleep 2
    if ls "$MNT/$PARTY" | grep -qx "$GUID"; then fail "$GUID still listed"; fi
    if ls "$MNT/$PARTY" | grep -qx "$NAME"; then fail "alias $NAME listed"; fi
fi

step "unknown values and read-only attributes"
expect_err "Invalid argument" setfattr -n user.altinn.process -v sideways "$MNT/$PARTY"/"$(ls "$MNT/$PARTY" | head -1)"
expect_err "Operation not supported" setfattr -n user.altinn.id -v x "$MNT/$PARTY/$(ls "$MNT/$PARTY" | head -1)"

step "rmdir of a new instance deletes it"
mkdir "$MNT/$PARTY/$NAME-2" || fail "mkdir 2"
ID2=$(attr id "$MNT/$PARTY/$NAME-2") || fail "no id 2"
GUID2=${ID2#*/}
expect_err "Operation not permitted" rmdir "$MNT/$PARTY/$GUID2/attachment"
expect_err "Operation not permitted" mkdir "$MNT/$PARTY/$GUID2/newtype"
rmdir "$MNT/$PARTY/$NAME-2" || fail "rmdir"
[[ ! -e $MNT/$PARTY/$NAME-2 ]] || fail "alias still there"
if ls "$MNT/$PARTY" | grep -qx "$GUID2"; then fail "$GUID2 still listed"; fi
echo "   deleted $GUID2"

echo "WORKFLOW OK $PARTY/$GUID $PARTY/$GUID2"
