# The OPA admission policy of the capabilities guide capwatch follows ("Enforcing capability
# restrictions with policy"), as the guide writes it: Rego v0 syntax, two deny rules.
package kubernetes.admission

deny[msg] {
  input.request.kind.kind == "Pod"
  container := input.request.object.spec.containers[_]

  # Ensure ALL capabilities are dropped
  not drops_all_capabilities(container)

  msg := sprintf("Container %v must drop ALL capabilities", [container.name])
}

deny[msg] {
  input.request.kind.kind == "Pod"
  container := input.request.object.spec.containers[_]

  # Check for dangerous capabilities
  dangerous := {"SYS_ADMIN", "SYS_PTRACE", "SYS_MODULE", "DAC_OVERRIDE"}
  added := {cap | cap := container.securityContext.capabilities.add[_]}
  violations := dangerous & added

  count(violations) > 0

  msg := sprintf("Container %v adds dangerous capabilities: %v",
    [container.name, violations])
}

drops_all_capabilities(container) {
  container.securityContext.capabilities.drop[_] == "ALL"
}
