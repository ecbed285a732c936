terraform {
  # Provider-free on purpose: pure locals/outputs, so `terraform init`, `validate` and
  # `terraform test` run offline (CI has no access to the provider registry).
  required_version = ">= 1.7.0"
}
