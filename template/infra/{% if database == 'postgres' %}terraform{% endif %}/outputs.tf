output "endpoint" {
  description = "Host name of the database (the service's DATABASE_URL host)."
  value       = aws_db_instance.database.address
}

output "port" {
  description = "Port of the database."
  value       = aws_db_instance.database.port
}

output "database_name" {
  description = "Name of the service's database."
  value       = aws_db_instance.database.db_name
}

output "master_user_secret_arn" {
  description = "ARN of the Secrets Manager secret RDS keeps the master credentials in."
  value       = aws_db_instance.database.master_user_secret[0].secret_arn
}

output "security_group_id" {
  description = "Security group of the database."
  value       = aws_security_group.database.id
}
