# The one definition of what goes into a function's source bundle. It needs no provider, so the
# test suite evaluates this same module offline (terraform console) and builds the bundle from
# the list it returns; Terraform zips exactly the same list in ../../functions.tf.
#
# A bundle holds, at the paths Cloud Functions expects:
#   main.py           <- functions/<function>/main.py (the entry point, at the bundle's root)
#   shared/**/*.py    <- shared/**/*.py (the package every function imports, same paths)
#   requirements.txt  <- requirements.txt (the runtime requirements, installed by the build)
#   extra files       <- var.extra_files (deployment files such as the webhook's catalog)

variable "repo_root" {
  description = "Absolute path of the repository root."
  type        = string
}

variable "function" {
  description = "Function folder name under functions/, e.g. spend."
  type        = string
}

variable "extra_files" {
  description = "Additional files: path inside the bundle => path of the file to copy there."
  type        = map(string)
  default     = {}
}

locals {
  # Patterns relative to the repository root; every match keeps its relative path.
  shared_patterns = ["shared/**/*.py", "requirements.txt"]

  shared_files = toset(flatten([for pattern in local.shared_patterns : tolist(fileset(var.repo_root, pattern))]))

  files = merge(
    { for relative in local.shared_files : relative => "${var.repo_root}/${relative}" },
    { "main.py" = "${var.repo_root}/functions/${var.function}/main.py" },
    var.extra_files,
  )

  # A digest of every bundle path and its content: any change to code, requirements or extra
  # files yields a new object name, hence a new deployment; an unchanged tree keeps its name.
  sha256 = sha256(join("\n", [for path in sort(keys(local.files)) : "${path} ${filesha256(local.files[path])}"]))
}

output "files" {
  description = "Path inside the bundle => absolute path of its source file."
  value       = local.files
}

output "sha256" {
  description = "Content digest of the bundle, used in the source object's name."
  value       = local.sha256
}
