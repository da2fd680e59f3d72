package v1alpha1

// Condition types of MeshSettings status.conditions. They follow kstatus:
// Ready summarises; Reconciling and Stalled are present only while True; the
// other types report one target each and are always present once the
// controller has looked at the targets.
const (
	// ConditionReady is True when every target holds the desired state of the
	// observed generation, and False (with the reason of the condition that
	// keeps it from being True) otherwise.
	ConditionReady = "Ready"
	// ConditionReconciling is True while the controller works towards the
	// desired state: a new generation it has not finished, or a transient
	// error it retries with backoff. Removed once the pass ends settled.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when no progress is possible without a change
	// by the user (or by the manager of another object): an invalid spec, a
	// conflict, a mesh document istiod would reject. Removed otherwise.
	ConditionStalled = "Stalled"
	// ConditionMeshConfigApplied is True when the mesh ConfigMap holds the
	// document the spec asks for, False when it does not and why.
	ConditionMeshConfigApplied = "MeshConfigApplied"
	// ConditionIstiodEnvApplied is True when istiod's discovery container
	// holds the environment entries the spec asks for, False when it does not
	// and why.
	ConditionIstiodEnvApplied = "IstiodEnvApplied"
	// ConditionNamespacesLabeled is True when every namespace the rules select
	// carries its labels, False when one does not and why.
	ConditionNamespacesLabeled = "NamespacesLabeled"
	// ConditionProxiesUpToDate is True when no proxy of this revision runs
	// the settings of before a change that reaches a proxy only in a new pod
	// (status.proxies.pending is 0), False (reason RestartPending) while some
	// do. It reports work left to the user and never changes Ready: the
	// operator did its job.
	ConditionProxiesUpToDate = "ProxiesUpToDate"
)

// Reasons of the conditions above.
const (
	// ReasonReconciled is Ready's reason when every target holds the desired
	// state.
	ReasonReconciled = "Reconciled"
	// ReasonUpToDate is the reason of a True target condition
	// (MeshConfigApplied, IstiodEnvApplied, NamespacesLabeled,
	// ProxiesUpToDate).
	ReasonUpToDate = "UpToDate"
	// ReasonProgressing is Reconciling's reason (and Ready=False's) while a new
	// generation is being written or a transient error is retried.
	ReasonProgressing = "Progressing"
	// ReasonInvalidSpec: the spec cannot be written as it is (a value istiod
	// would reject, a selector that does not parse, a document too large for a
	// ConfigMap, a setting the running istiod does not support). Set on
	// Stalled and Ready; the message names the field. Nothing is written.
	ReasonInvalidSpec = "InvalidSpec"
	// ReasonConflict: another MeshSettings, created earlier, writes the same
	// ConfigMap or istiod Deployment. Set on Stalled and Ready; this one
	// writes nothing until the other one is removed.
	ReasonConflict = "Conflict"
	// ReasonIstiodNotFound: the istiod Deployment or its container is absent.
	// Set on IstiodEnvApplied=False and Ready=False; the entries are written
	// when it appears.
	ReasonIstiodNotFound = "IstiodNotFound"
	// ReasonConfigMapNotFound: with configMapOwnership Merge the mesh
	// ConfigMap is absent, and the operator waits for its owner (Helm) to
	// create it. Set on MeshConfigApplied=False and Ready=False.
	ReasonConfigMapNotFound = "ConfigMapNotFound"
	// ReasonMeshDocumentRejected: istiod would reject the mesh document (not
	// YAML, a wrong type, a value its validation refuses), whoever wrote it.
	// Set on Stalled, MeshConfigApplied=False and Ready=False; the message
	// names the ConfigMap and the key or the parse error. Nothing is written
	// until the document is fixed; it is checked again on every change of the
	// ConfigMap.
	ReasonMeshDocumentRejected = "MeshDocumentRejected"
	// ReasonMeshConfigOwnedByApply: with configMapOwnership Merge another
	// manager owns .data.mesh by server-side apply (Helm 4, Argo CD with
	// ServerSideApply=true), so a forced write would lock it out. Set on
	// MeshConfigApplied=False, Stalled and Ready=False; the message gives the
	// remedy.
	ReasonMeshConfigOwnedByApply = "MeshConfigOwnedByApply"
	// ReasonEnvHeldByOtherManager: an environment entry the spec sets is
	// applied by another manager (Helm's PILOT_TRACE_SAMPLING, say) and is not
	// taken from it. Set on IstiodEnvApplied=False and Ready=False; the
	// message names the chart value to set.
	ReasonEnvHeldByOtherManager = "EnvHeldByOtherManager"
	// ReasonLabelConflict: a namespace label the rules want is held by another
	// manager or another MeshSettings. Set on NamespacesLabeled=False, Stalled
	// and Ready=False; status.namespaces.conflicts lists them.
	ReasonLabelConflict = "LabelConflict"
	// ReasonApplyFailed: the API server refused a write for a reason other
	// than a concurrent change. Set on the target's condition (False); the
	// pass is retried with backoff.
	ReasonApplyFailed = "ApplyFailed"
	// ReasonRestartPending: proxies created before the last change that
	// reaches a proxy only in a new pod, or injected with a revision their
	// namespace no longer selects, still run. Set on ProxiesUpToDate=False;
	// status.proxies lists them by namespace and workload, and an event says
	// how to restart them.
	ReasonRestartPending = "RestartPending"
)
