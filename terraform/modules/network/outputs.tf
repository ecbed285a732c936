output "vpc_id" {
  description = "ID of the VPC."
  value       = aws_vpc.this.id
}

output "vpc_cidr_block" {
  description = "CIDR block of the VPC."
  value       = aws_vpc.this.cidr_block
}

output "availability_zones" {
  description = "Availability Zones in use."
  value       = local.azs
}

output "public_subnet_ids" {
  description = "Public subnet IDs (ALB, NAT gateways)."
  value       = aws_subnet.public[*].id
}

output "private_subnet_ids" {
  description = "Private subnet IDs (GPU instances and tasks). Depends on the egress (NAT routes, interface endpoints), so whatever runs in these subnets is created after it and destroyed before it, without a module-level depends_on."
  value       = aws_subnet.private[*].id
  depends_on  = [aws_route_table_association.private, aws_route.private_nat, aws_vpc_endpoint.interface, aws_vpc_endpoint.s3]
}

output "private_route_table_ids" {
  description = "Private route table IDs."
  value       = aws_route_table.private[*].id
}

output "nat_gateway_ids" {
  description = "NAT gateway IDs (empty when egress_mode = vpc_endpoints)."
  value       = aws_nat_gateway.this[*].id
}

output "nat_public_ips" {
  description = "Public IPs of the NAT gateways."
  value       = aws_eip.nat[*].public_ip
}

output "interface_endpoint_ids" {
  description = "Interface VPC endpoint IDs by service."
  value       = { for k, v in aws_vpc_endpoint.interface : k => v.id }
}

output "flow_log_group_name" {
  description = "CloudWatch log group of the VPC flow logs."
  value       = aws_cloudwatch_log_group.flow_logs.name
}
