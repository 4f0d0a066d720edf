"""archsim.report"""
